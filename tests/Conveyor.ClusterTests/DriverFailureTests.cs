using System.Diagnostics;
using Conveyor.Testing;
using Xunit.Abstractions;

namespace Conveyor.ClusterTests;

/// <summary>
/// Driver processes (the SDK-based echo sample) killed with SIGKILL mid-step: the message goes to another instance
/// after the consumer's ack wait. A step longer than the ack wait keeps its lease by in-progress heartbeats and is
/// not redelivered while its driver lives.
/// </summary>
public sealed class DriverFailureTests(ITestOutputHelper output)
{
    // Heartbeats go every third of the ack wait, so only a stall of two thirds of it between two of them (here over
    // 3 s, in a driver process competing for two busy cores) could make a living instance lose its step.
    private static readonly TimeSpan AckWait = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan StepTime = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Step_of_a_killed_driver_is_redelivered_to_another_instance_and_a_long_living_one_is_not()
    {
        await using var nats = await NatsServerProcess.StartNewAsync();
        await using var redis = await RedisServerProcess.StartNewAsync();
        await using var silo = await SiloProcess.StartAsync("silo-1", SiloProcess.Settings("drivers", nats.Url, redis.ConnectionString));
        await silo.PostJsonAsync("/resource-definitions", new { name = ClusterLoad.ResourceType, schema = new { type = "object" } });
        await silo.PostJsonAsync("/pipelines", new { name = "long", resource = ClusterLoad.ResourceType, steps = new[] { new { id = "build", driver = "builder" } } });

        // One instance takes the step and is killed in the middle of it; a second instance then gets it.
        await using var doomed = EchoDriverProcess.Start("echo-1", nats.Url, "builder", StepTime, AckWait);
        var runId = (await silo.PostJsonAsync("/resources", new { name = "web-1", resource = ClusterLoad.ResourceType, pipeline = "long", spec = new { } }))
            .GetProperty("runid").GetString()!;
        await Eventually.TrueAsync(async () => await DeliveriesAsync(silo, runId) == 1, TimeSpan.FromSeconds(60), "the first instance received the step");
        await doomed.KillAsync();
        var clock = Stopwatch.StartNew();
        await using var survivor = EchoDriverProcess.Start("echo-2", nats.Url, "builder", StepTime, AckWait);
        await Eventually.TrueAsync(async () => await DeliveriesAsync(silo, runId) == 2, TimeSpan.FromSeconds(60), "the step is redelivered to the second instance");
        var redelivered = clock.Elapsed;
        var run = await WaitForRunAsync(silo, runId);
        Assert.Equal("Succeeded", run.GetProperty("status").GetString());
        var attempts = run.GetProperty("steps")[0].GetProperty("attempts");
        Assert.Equal(1, attempts.GetArrayLength());
        output.WriteLine($"driver kill -9 mid-step: redelivered to another instance {redelivered.TotalSeconds:F1} s after the kill (ack wait {AckWait.TotalSeconds:F0} s)");

        // Two live instances, a step twice as long as the ack wait: heartbeats keep it with the one that has it.
        await using var second = EchoDriverProcess.Start("echo-3", nats.Url, "builder", StepTime, AckWait);
        var longRun = (await silo.PostJsonAsync("/resources", new { name = "web-2", resource = ClusterLoad.ResourceType, pipeline = "long", spec = new { } }))
            .GetProperty("runid").GetString()!;
        run = await WaitForRunAsync(silo, longRun);
        Assert.Equal("Succeeded", run.GetProperty("status").GetString());
        Assert.Equal(1, run.GetProperty("steps")[0].GetProperty("attempts").GetArrayLength());
        var took = run.GetProperty("finishedAt").GetDateTimeOffset() - run.GetProperty("startedAt").GetDateTimeOffset();
        Assert.True(took >= StepTime, $"the step really outlived the ack wait ({took})");
        Assert.Equal(1, await DeliveriesAsync(silo, longRun));
    }

    /// <summary>How many times a driver instance received the run's step, from what the instances wrote to the run log.</summary>
    private static async Task<int> DeliveriesAsync(SiloProcess silo, string runId)
    {
        using var response = await silo.Http.GetAsync($"/runs/{runId}/logs?format=text&limit=1000");
        if (!response.IsSuccessStatusCode)
        {
            return 0;
        }

        var text = await response.Content.ReadAsStringAsync();
        return text.Split('\n').Count(l => l.Contains("step build, attempt 1", StringComparison.Ordinal));
    }

    private static async Task<System.Text.Json.JsonElement> WaitForRunAsync(SiloProcess silo, string runId)
    {
        var runs = await ClusterLoad.WaitForAllAsync(() => [silo], [runId], TimeSpan.FromSeconds(120));
        return runs[runId];
    }
}
