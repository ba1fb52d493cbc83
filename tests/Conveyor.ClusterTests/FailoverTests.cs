using System.Diagnostics;
using System.Text.Json;
using Conveyor.Testing;
using Xunit.Abstractions;

namespace Conveyor.ClusterTests;

/// <summary>
/// The loss of any one machine of the recommended topology (<see cref="HaTopology"/>), each with runs of a 5-step DAG
/// in flight: every run finishes and each (run, step) has exactly one successful attempt in the run's record.
/// </summary>
public sealed class FailoverTests(HaTopology topology, ITestOutputHelper output) : IClassFixture<HaTopology>
{
    private const int Runs = 50;

    [Fact]
    public async Task Every_stream_the_engine_keeps_has_three_replicas()
    {
        await using var connection = new NATS.Client.Core.NatsConnection(NATS.Client.Core.NatsOpts.Default with { Url = topology.NatsUrl });
        var js = new NATS.Client.JetStream.NatsJSContext(connection);
        var replicas = new Dictionary<string, int>(StringComparer.Ordinal);
        await foreach (var stream in js.ListStreamsAsync())
        {
            replicas[stream.Info.Config.Name!] = stream.Info.Config.NumReplicas;
        }

        // The original's streams, then the engine's own: dispatch, results, logs, events, run events, dead letters.
        foreach (var name in new[] { "messages", "pipeline-engine", "logs-engine", "conveyor-runs", "conveyor-deadletter", "conveyor-archive" })
        {
            Assert.True(replicas.ContainsKey(name), $"stream {name} missing: {string.Join(", ", replicas.Keys)}");
        }

        Assert.All(replicas, r => Assert.True(r.Value == 3, $"stream {r.Key} is R{r.Value}, expected R3"));
    }

    [Fact]
    public async Task Killing_the_nats_server_that_leads_the_streams_loses_no_run()
    {
        var (_, took) = await UnderFaultAsync("nats-leader", async () =>
        {
            var leader = await topology.StreamLeaderAsync("messages");
            output.WriteLine($"kill -9 of {leader.Name}, leader of the messages stream");
            await leader.Server.KillAsync();
        });
        output.WriteLine($"kill -9 of the stream leader → every run finished: {took.TotalSeconds:F1} s");
    }

    [Fact]
    public async Task Killing_the_redis_primary_fails_over_and_loses_no_run()
    {
        RedisServerProcess? old = null;
        var (_, took) = await UnderFaultAsync("redis-primary", async () =>
        {
            old = await topology.RedisPrimaryAsync();
            await old.KillAsync();
        });
        var now = await topology.RedisPrimaryAsync();
        Assert.NotSame(old, now);
        output.WriteLine($"kill -9 of the Redis primary (Sentinel failed over to :{now.Port}) → every run finished: {took.TotalSeconds:F1} s");
    }

    [Fact]
    public async Task Pausing_the_redis_primary_past_its_failover_loses_no_run()
    {
        RedisServerProcess? old = null;
        var (_, took) = await UnderFaultAsync("redis-pause", async () =>
        {
            old = await topology.RedisPrimaryAsync();
            old.Suspend();
            try
            {
                // Long enough for the Sentinels to promote a replica; then the old primary wakes up with the writes
                // it had received and is turned into a replica (losing them), which no acknowledged write may be.
                await Eventually.TrueAsync(async () => await topology.RedisPrimaryAsync() != old, TimeSpan.FromSeconds(60), "the Sentinels fail over");
                await Task.Delay(TimeSpan.FromSeconds(1));
            }
            finally
            {
                old.Resume();
            }
        });
        output.WriteLine($"SIGSTOP of the Redis primary until failover, then SIGCONT → every run finished: {took.TotalSeconds:F1} s");
    }

    [Fact]
    public async Task Killing_one_of_three_silos_with_default_failure_detection_loses_no_run()
    {
        var (_, took) = await UnderFaultAsync("silo-kill", () => topology.Silos[2].KillAsync(), survivors: 2);
        output.WriteLine($"kill -9 of one of 3 silos (default failure detection) → every run finished: {took.TotalSeconds:F1} s");
    }

    [Fact]
    public async Task A_silo_paused_past_its_death_detection_commits_nothing_when_it_wakes()
    {
        await topology.EnsureHealthyAsync();
        var silos = topology.Silos.ToList();
        var zombie = silos[2];
        var survivors = silos.Take(2).ToList();
        var (ids, faultAt) = await StartAsync("zombie", silos);
        zombie.Suspend();
        Dictionary<string, JsonElement> runs;
        try
        {
            // The survivors declare it dead, take over its runs and finish them all while it sleeps.
            runs = await ClusterLoad.WaitForAllAsync(() => survivors, ids, TimeSpan.FromSeconds(120));
            ClusterLoad.AssertExactlyOnce(runs);
        }
        finally
        {
            zombie.Resume();
        }

        var took = ClusterLoad.LastFinish(runs) - faultAt;
        // Awake, it still holds activations, timers and results it had taken; it must find out it is dead (Orleans
        // then stops it) and commit nothing: the run store's version check refuses its stale writes.
        var exited = await zombie.WaitForExitAsync(TimeSpan.FromSeconds(60));
        var after = await ClusterLoad.WaitForAllAsync(() => survivors, ids, TimeSpan.FromSeconds(60));
        ClusterLoad.AssertExactlyOnce(after);
        foreach (var id in ids)
        {
            Assert.Equal(Summary(runs[id]), Summary(after[id]));
        }

        output.WriteLine(
            $"SIGSTOP of one of 3 silos → every run finished on the others: {took.TotalSeconds:F1} s; after SIGCONT the silo " +
            (exited ? $"stopped itself (exit code {zombie.ExitCode})" : "was still running") + "; no record changed");
        Assert.True(exited, $"the silo declared dead should stop itself once awake:\n{zombie.RecentOutput}");
    }

    private async Task<(Dictionary<string, JsonElement> Runs, TimeSpan FaultToDone)> UnderFaultAsync(string prefix, Func<Task> fault, int survivors = 3)
    {
        await topology.EnsureHealthyAsync();
        var silos = topology.Silos.ToList();
        var (ids, faultAt) = await StartAsync(prefix, silos);
        await fault();
        var polled = silos.Take(survivors).ToList();
        var runs = await ClusterLoad.WaitForAllAsync(() => polled, ids, TimeSpan.FromSeconds(120));
        ClusterLoad.AssertExactlyOnce(runs);
        output.WriteLine($"driver saw {topology.Driver.DuplicateDeliveries} duplicate deliveries of {topology.Driver.TotalDeliveries} so far (record: exactly once)");
        return (runs, ClusterLoad.LastFinish(runs) - faultAt);
    }

    /// <summary>Starts the runs and returns once they are under way, with the moment the fault is injected.</summary>
    private async Task<(List<string> Ids, DateTimeOffset FaultAt)> StartAsync(string prefix, IReadOnlyList<SiloProcess> silos)
    {
        var before = topology.Driver.TotalDeliveries;
        var ids = await ClusterLoad.StartRunsAsync(silos, prefix + "-" + Guid.NewGuid().ToString("N")[..6], Runs);
        await Eventually.TrueAsync(() => topology.Driver.TotalDeliveries >= before + Runs, TimeSpan.FromSeconds(60), "the runs are under way");
        return (ids, DateTimeOffset.UtcNow);
    }

    private static string Summary(JsonElement run) =>
        run.GetProperty("status").GetString() + ":" +
        string.Join(",", run.GetProperty("steps").EnumerateArray().Select(s => $"{s.GetProperty("id")}={s.GetProperty("status")}/{s.GetProperty("attempts").GetArrayLength()}"));
}
