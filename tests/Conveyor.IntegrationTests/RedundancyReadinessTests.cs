using Conveyor.Testing;

namespace Conveyor.IntegrationTests;

/// <summary>
/// Settings for replicated NATS and Redis that the servers cannot honour are reported, not ignored: streams a server
/// cannot place, a Redis that would evict keys, a primary without the replicas writes wait for.
/// </summary>
public sealed class RedundancyReadinessTests
{
    [Fact]
    public async Task Streams_a_single_nats_server_cannot_place_with_three_replicas_make_the_silo_not_ready()
    {
        await using var nats = await NatsServerProcess.StartNewAsync();
        await using var redis = await RedisServerProcess.StartNewAsync();
        await using var host = await ConveyorTestHost.StartAsync(nats.Url, redis.ConnectionString, "replicas-" + Guid.NewGuid().ToString("N")[..8],
            new Dictionary<string, string?> { ["Conveyor:Nats:Replicas"] = "3" });

        var body = await NotReadyAsync(host, "JetStream cannot place stream messages with 3 replicas");
        Assert.Contains("urn:conveyor:problem:not-ready", body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_redis_that_can_evict_keys_is_refused_at_start()
    {
        await using var nats = await NatsServerProcess.StartNewAsync();
        await using var redis = await RedisServerProcess.StartNewAsync(["--maxmemory-policy", "allkeys-lru"]);

        var ex = await Assert.ThrowsAnyAsync<Exception>(() =>
            ConveyorTestHost.StartAsync(nats.Url, redis.ConnectionString, "evict-" + Guid.NewGuid().ToString("N")[..8]));
        var all = Flatten(ex);
        Assert.True(all.Contains("maxmemory-policy is 'allkeys-lru'", StringComparison.Ordinal), all);
    }

    [Fact]
    public async Task A_redis_primary_without_the_replicas_writes_wait_for_makes_the_silo_not_ready()
    {
        await using var nats = await NatsServerProcess.StartNewAsync();
        await using var redis = await RedisServerProcess.StartNewAsync();
        await using var host = await ConveyorTestHost.StartAsync(nats.Url, redis.ConnectionString, "acks-" + Guid.NewGuid().ToString("N")[..8],
            new Dictionary<string, string?> { ["Conveyor:Redis:ReplicaAcks"] = "1", ["Conveyor:Redis:ReplicaAckTimeout"] = "00:00:00.200" });

        await NotReadyAsync(host, "the Redis primary has 0 online replicas; writes wait for 1");
        // And a write is not acknowledged: no replica holds it.
        using var response = await host.Http.PostAsync("/resource-definitions",
            new StringContent("""{"name":"app","schema":{"type":"object"}}""", System.Text.Encoding.UTF8, "application/json"));
        Assert.NotEqual(System.Net.HttpStatusCode.Created, response.StatusCode);
    }

    private static async Task<string> NotReadyAsync(ConveyorTestHost host, string expected)
    {
        var body = "";
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            using var response = await host.Http.GetAsync("/readyz");
            body = await response.Content.ReadAsStringAsync();
            if ((int)response.StatusCode == 503 && body.Contains(expected, StringComparison.Ordinal))
            {
                return body;
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"/readyz should say '{expected}' within 30 s; last: {body}");
    }

    private static string Flatten(Exception ex) => ex is AggregateException a ? string.Join(" | ", a.InnerExceptions.Select(Flatten)) : ex + (ex.InnerException is { } inner ? " | " + Flatten(inner) : "");
}
