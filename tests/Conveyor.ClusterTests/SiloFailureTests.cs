using System.Diagnostics;
using Conveyor.Testing;
using Xunit.Abstractions;

namespace Conveyor.ClusterTests;

/// <summary>
/// Real silo processes on one redis-server and one nats-server: throughput with one and two silos, then a silo killed
/// with SIGKILL and one stopped with SIGTERM in the middle of 200 runs. No run may be lost and no (run, step) may
/// complete twice in a run's record, whatever the driver saw.
/// </summary>
public sealed class SiloFailureTests(ITestOutputHelper output)
{
    private const int Runs = 200;

    [Fact]
    public async Task Killed_silo_loses_no_run_and_completes_no_step_twice()
    {
        await using var nats = await NatsServerProcess.StartNewAsync();
        await using var redis = await RedisServerProcess.StartNewAsync();
        var settings = SiloProcess.Settings("kill", nats.Url, redis.ConnectionString);
        await using var first = await SiloProcess.StartAsync("silo-1", settings);
        await ClusterLoad.DefineAsync(first);
        await using var driver = await LoadDriver.StartAsync(nats.Url, ClusterLoad.Driver, ClusterLoad.ResourceType);

        // Throughput with one silo, then with two (requests spread over both).
        var oneSilo = await MeasureAsync([first], "one");
        await using var second = await SiloProcess.StartAsync("silo-2", settings);
        var twoSilos = await MeasureAsync([first, second], "two");
        output.WriteLine($"throughput, {Runs} runs of a 5-step DAG: 1 silo {oneSilo:F1} runs/s, 2 silos {twoSilos:F1} runs/s");

        // Now the failure: 200 runs on two silos (with a slower driver, so runs are mid-flight), kill -9 one of them.
        await using var slowDriver = await LoadDriver.StartAsync(nats.Url, "slow-worker", ClusterLoad.ResourceType, TimeSpan.FromMilliseconds(300));
        await first.PostJsonAsync("/pipelines", new
        {
            name = "dag5-slow",
            resource = ClusterLoad.ResourceType,
            steps = ClusterLoad.StepIds.Select(id => new
            {
                id,
                driver = "slow-worker",
                dependsOn = id switch { "a" => Array.Empty<string>(), "b" or "c" => ["a"], "d" => ["b", "c"], _ => ["d"] },
            }).ToArray(),
        });
        var ids = await StartRunsAsync([first, second], "kill", "dag5-slow");
        await Eventually.TrueAsync(() => slowDriver.TotalDeliveries >= Runs * 2, TimeSpan.FromSeconds(120), "the runs are under way");
        var killedAt = DateTimeOffset.UtcNow;
        var clock = Stopwatch.StartNew();
        await second.KillAsync();

        var runs = await ClusterLoad.WaitForAllAsync(() => [first], ids, TimeSpan.FromSeconds(120));
        var allDone = clock.Elapsed;
        ClusterLoad.AssertExactlyOnce(runs);
        var finishedAfterKill = runs.Values.Select(r => r.GetProperty("finishedAt").GetDateTimeOffset()).Where(t => t > killedAt).Order().ToList();
        var firstAfter = finishedAfterKill.Count > 0 ? finishedAfterKill[0] - killedAt : TimeSpan.Zero;
        output.WriteLine(
            $"silo kill -9 with {Runs} runs in flight ({Runs - finishedAfterKill.Count} finished before): all finished {(ClusterLoad.LastFinish(runs) - killedAt).TotalSeconds:F1} s after the kill " +
            $"(first run finished {firstAfter.TotalSeconds:F1} s after; observed by polling {allDone.TotalSeconds:F1} s); " +
            $"driver saw {slowDriver.DuplicateDeliveries} duplicate deliveries of {slowDriver.TotalDeliveries} (record: exactly once)");
        Assert.Equal(Runs * 5, runs.Values.Sum(r => r.GetProperty("steps").GetArrayLength()));
    }

    [Fact]
    public async Task Silo_stopped_with_sigterm_drains_and_leaves_without_losing_or_doubling_a_run()
    {
        await using var nats = await NatsServerProcess.StartNewAsync();
        await using var redis = await RedisServerProcess.StartNewAsync();
        var settings = SiloProcess.Settings("drain", nats.Url, redis.ConnectionString);
        var started = await SiloProcess.StartManyAsync(settings, "silo-1", "silo-2");
        await using var first = started[0];
        await using var second = started[1];
        await ClusterLoad.DefineAsync(first);
        await using var driver = await LoadDriver.StartAsync(nats.Url, ClusterLoad.Driver, ClusterLoad.ResourceType, TimeSpan.FromMilliseconds(300));

        var ids = await StartRunsAsync([first, second], "drain", ClusterLoad.Pipeline);
        await Eventually.TrueAsync(() => driver.TotalDeliveries >= Runs * 2, TimeSpan.FromSeconds(120), "the runs are under way");
        var stoppedAt = DateTimeOffset.UtcNow;
        var clock = Stopwatch.StartNew();
        var exitCode = await second.TerminateAsync(TimeSpan.FromSeconds(45));
        var stopTook = clock.Elapsed;
        Assert.True(exitCode == 0, $"silo-2 exited with {exitCode}:\n{second.RecentOutput}");

        var runs = await ClusterLoad.WaitForAllAsync(() => [first], ids, TimeSpan.FromSeconds(120));
        ClusterLoad.AssertExactlyOnce(runs);
        output.WriteLine(
            $"silo SIGTERM with {Runs} runs in flight: exited 0 after {stopTook.TotalSeconds:F1} s; all runs finished {(ClusterLoad.LastFinish(runs) - stoppedAt).TotalSeconds:F1} s after the signal; " +
            $"driver saw {driver.DuplicateDeliveries} duplicate deliveries of {driver.TotalDeliveries} (record: exactly once)");
        // It left the cluster cleanly: the survivor never had to declare it dead, and stays ready.
        Assert.Equal(200, await first.ReadyStatusAsync());
    }

    private static async Task<double> MeasureAsync(IReadOnlyList<SiloProcess> silos, string label)
    {
        var clock = Stopwatch.StartNew();
        var ids = await StartRunsAsync(silos, "tp-" + label, ClusterLoad.Pipeline);
        var runs = await ClusterLoad.WaitForAllAsync(() => silos, ids, TimeSpan.FromSeconds(120));
        clock.Stop();
        ClusterLoad.AssertExactlyOnce(runs);
        // Server-side span: first run created to last run finished.
        var span = ClusterLoad.LastFinish(runs) - ClusterLoad.FirstCreated(runs);
        return Runs / span.TotalSeconds;
    }

    private static Task<List<string>> StartRunsAsync(IReadOnlyList<SiloProcess> silos, string prefix, string pipeline) =>
        ClusterLoad.StartRunsAsync(silos, prefix, Runs, pipeline);
}
