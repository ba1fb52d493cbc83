using Conveyor.Testing;
using Xunit.Abstractions;

namespace Conveyor.ClusterTests;

/// <summary>
/// The stuck-run sweep: a step whose driver never answers, on a silo that is then killed. The step's timeout still
/// fires — on the other silo, which the run's durable reminder wakes it on — and the step is retried.
/// </summary>
public sealed class StuckRunTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Step_timeout_fires_on_another_silo_after_the_owning_silo_is_killed()
    {
        await using var nats = await NatsServerProcess.StartNewAsync();
        await using var redis = await RedisServerProcess.StartNewAsync();
        // The run grain's own log line tells which silo hosts it.
        var settings = SiloProcess.Settings("stuck", nats.Url, redis.ConnectionString, new Dictionary<string, string>
        {
            ["Logging:LogLevel:Conveyor.Grains.Runs.PipelineRunGrain"] = "Information",
        });
        var started = await SiloProcess.StartManyAsync(settings, "silo-1", "silo-2");
        await using var first = started[0];
        await using var second = started[1];
        await first.PostJsonAsync("/resource-definitions", new { name = ClusterLoad.ResourceType, schema = new { type = "object" } });
        await first.PostJsonAsync("/pipelines", new
        {
            name = "stuck",
            resource = ClusterLoad.ResourceType,
            // Long enough that the owner is always killed before it could time the attempt out itself, even when the
            // steps up to the kill crawl on a busy machine: the timeout must be the survivor's.
            steps = new[] { new { id = "s", driver = "mute", timeout = "20s", retry = new { maxAttempts = 2, initialDelay = "1s", jitter = 0.0 } } },
        });
        // The first attempt is taken and never answered; the retry is.
        await using var driver = await LoadDriver.StartAsync(nats.Url, "mute", ClusterLoad.ResourceType, answer: m => m.GetProperty("attempt").GetInt32() > 1);

        var runId = (await first.PostJsonAsync("/resources", new { name = "web", resource = ClusterLoad.ResourceType, pipeline = "stuck", spec = new { } }))
            .GetProperty("runid").GetString()!;
        await Eventually.TrueAsync(() => driver.TotalDeliveries == 1, Deadlines.Event, "the first attempt reached the driver");
        await Eventually.TrueAsync(() => first.CountLines(runId) + second.CountLines(runId) > 0, Deadlines.Event, "the hosting silo logged the run's start");
        var (owner, heir) = first.CountLines(runId) > 0 ? (first, second) : (second, first);
        var killedAt = DateTimeOffset.UtcNow;
        await owner.KillAsync();
        output.WriteLine($"run {runId} was hosted by {owner.Name}; killed it");

        var run = (await ClusterLoad.WaitForAllAsync(() => [heir], [runId], TimeSpan.FromSeconds(120)))[runId];
        Assert.Equal("Succeeded", run.GetProperty("status").GetString());
        var attempts = run.GetProperty("steps")[0].GetProperty("attempts");
        Assert.Equal(2, attempts.GetArrayLength());
        Assert.True(attempts[0].GetProperty("timedOut").GetBoolean(), $"attempt 1 timed out: {attempts[0]}");
        Assert.True(attempts[0].GetProperty("finishedAt").GetDateTimeOffset() > killedAt, "the timeout was applied after the owner died, so by the other silo");
        Assert.True(attempts[1].GetProperty("success").GetBoolean());
        output.WriteLine(
            $"stuck step swept by the surviving silo: attempt 1 timed out {(attempts[0].GetProperty("finishedAt").GetDateTimeOffset() - attempts[0].GetProperty("dispatchedAt").GetDateTimeOffset()).TotalSeconds:F1} s after dispatch " +
            $"(timeout 20 s), run finished {(run.GetProperty("finishedAt").GetDateTimeOffset() - killedAt).TotalSeconds:F1} s after the kill");
    }
}
