using System.Diagnostics;
using Conveyor.Testing;
using Xunit.Abstractions;

namespace Conveyor.ClusterTests;

/// <summary>
/// nats-server (same store directory) and redis-server (append-only file) restarted under load on a two-silo cluster:
/// <c>/readyz</c> turns 503 naming the dependency while it is down and 200 again after, and every run finishes with
/// each step completed exactly once.
/// </summary>
public sealed class DependencyRestartTests(ITestOutputHelper output)
{
    private const int Runs = 100;

    [Fact]
    public async Task Nats_and_redis_restarts_mid_load_lose_no_run_and_readiness_follows_them()
    {
        var total = Stopwatch.StartNew();
        await using var nats = await NatsServerProcess.StartNewAsync();
        await using var redis = await RedisServerProcess.StartNewAsync();
        var settings = SiloProcess.Settings("restart", nats.Url, redis.ConnectionString);
        var started = await SiloProcess.StartManyAsync(settings, "silo-1", "silo-2");
        await using var first = started[0];
        await using var second = started[1];
        SiloProcess[] silos = [first, second];
        output.WriteLine($"[{total.Elapsed.TotalSeconds:F1} s] two silos ready");
        await ClusterLoad.DefineAsync(first);
        await using var driver = await LoadDriver.StartAsync(nats.Url, ClusterLoad.Driver, ClusterLoad.ResourceType, TimeSpan.FromMilliseconds(100));

        // NATS goes away mid-load and comes back on the same port with the same JetStream store.
        var ids = await ClusterLoad.StartRunsAsync(silos, "nats", Runs);
        await Eventually.TrueAsync(() => driver.TotalDeliveries >= Runs, TimeSpan.FromSeconds(60), "the runs are under way");
        await nats.StopAsync();
        await ExpectNotReadyAsync(silos, "NATS");
        var down = Stopwatch.StartNew();
        await nats.StartAsync();
        await ExpectReadyAsync(silos);
        output.WriteLine($"NATS restart: ready again {down.Elapsed.TotalSeconds:F1} s after nats-server was back");
        var runs = await WaitAsync(silos, ids, driver, nats.Url);
        ClusterLoad.AssertExactlyOnce(runs);
        output.WriteLine($"[{total.Elapsed.TotalSeconds:F1} s] NATS phase done");

        // Redis (membership, grain state, reminders, index) goes away mid-load and comes back from its append-only file.
        var deliveries = driver.TotalDeliveries;
        ids = await ClusterLoad.StartRunsAsync(silos, "redis", Runs);
        await Eventually.TrueAsync(() => driver.TotalDeliveries >= deliveries + Runs, TimeSpan.FromSeconds(60), "the runs are under way");
        await redis.StopAsync();
        await ExpectNotReadyAsync(silos, "Redis");
        down.Restart();
        await redis.StartAsync();
        await ExpectReadyAsync(silos);
        output.WriteLine($"Redis restart: ready again {down.Elapsed.TotalSeconds:F1} s after redis-server was back");
        runs = await WaitAsync(silos, ids, driver, nats.Url);
        ClusterLoad.AssertExactlyOnce(runs);
        output.WriteLine($"[{total.Elapsed.TotalSeconds:F1} s] Redis phase done; driver saw {driver.DuplicateDeliveries} duplicate deliveries of {driver.TotalDeliveries} (record: exactly once)");
    }

    private static async Task<Dictionary<string, System.Text.Json.JsonElement>> WaitAsync(SiloProcess[] silos, List<string> ids, LoadDriver driver, string natsUrl)
    {
        try
        {
            return await ClusterLoad.WaitForAllAsync(() => silos, ids, TimeSpan.FromSeconds(120));
        }
        catch (TimeoutException ex)
        {
            await using var nc = new NATS.Client.Core.NatsConnection(NATS.Client.Core.NatsOpts.Default with { Url = natsUrl });
            var js = new NATS.Client.JetStream.NatsJSContext(nc);
            var info = "";
            foreach (var (stream, consumer) in new[] { ("messages", ClusterLoad.Driver), ("pipeline-engine", "pipeline-engine") })
            {
                var c = (await js.GetConsumerAsync(stream, consumer)).Info;
                info += $"{stream}/{consumer}: pending {c.NumPending}, ack pending {c.NumAckPending}, redelivered {c.NumRedelivered}, delivered {c.Delivered.StreamSeq}, ackfloor {c.AckFloor.StreamSeq}\n";
            }

            var deliveries = string.Join(", ", driver.Deliveries.Where(d => ex.Message.Contains(d.Key[..36], StringComparison.Ordinal)).Select(d => $"{d.Key}={d.Value}"));
            throw new TimeoutException($"{info}driver deliveries of stuck runs: {deliveries}\n{ex.Message}", ex);
        }
    }

    private static async Task ExpectNotReadyAsync(IEnumerable<SiloProcess> silos, string dependency)
    {
        foreach (var silo in silos)
        {
            var body = "";
            await Eventually.TrueAsync(
                async () =>
                {
                    (var status, body) = await silo.ReadyAsync();
                    return status == 503 && body.Contains(dependency, StringComparison.Ordinal);
                },
                Deadlines.Event,
                $"{silo.Name} should report {dependency} down (last: {body})");
            Assert.Contains("application/problem+json", await ContentTypeAsync(silo), StringComparison.Ordinal);
        }
    }

    private static async Task<string> ContentTypeAsync(SiloProcess silo)
    {
        using var response = await silo.Http.GetAsync("/readyz");
        return response.Content.Headers.ContentType?.ToString() ?? "";
    }

    private static async Task ExpectReadyAsync(IEnumerable<SiloProcess> silos)
    {
        foreach (var silo in silos)
        {
            await silo.WaitReadyAsync(Deadlines.Event);
        }
    }
}
