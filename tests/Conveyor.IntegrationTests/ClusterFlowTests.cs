using System.Net;
using System.Text.Json;
using Conveyor.Api.Hosting;
using Conveyor.Testing;

namespace Conveyor.IntegrationTests;

/// <summary>
/// Two silos in cluster mode (Redis membership, storage and reminders) on one real nats-server and redis-server; the
/// namespace <see cref="LimitedNamespace"/> allows two active runs.
/// </summary>
public sealed class ClusterFlowFixture : IAsyncLifetime
{
    public const string LimitedNamespace = "limited";

    private NatsServerProcess? _nats;
    private RedisServerProcess? _redis;

    public NatsServerProcess Nats => _nats!;

    public RedisServerProcess Redis => _redis!;

    public ConveyorTestHost A { get; private set; } = null!;

    public ConveyorTestHost B { get; private set; } = null!;

    public string ServiceId { get; } = "cf-" + Guid.NewGuid().ToString("N")[..8];

    public static IDictionary<string, string?> Settings => new Dictionary<string, string?>
    {
        [$"Conveyor:FlowControl:NamespaceLimits:{LimitedNamespace}"] = "2",
        ["Conveyor:FlowControl:VerifyPeriod"] = "00:00:10",
        ["Conveyor:Runs:KeepAlivePeriod"] = "00:00:10",
        ["Conveyor:Schedules:WakePeriod"] = "00:00:05",
        // These tests are about admission across silos; API keys (on by default in cluster mode) are tested elsewhere.
        ["Conveyor:Auth:Enabled"] = "false",
    };

    public async Task InitializeAsync()
    {
        _nats = await NatsServerProcess.StartNewAsync();
        _redis = await RedisServerProcess.StartNewAsync();
        A = await StartSiloAsync();
        B = await StartSiloAsync();
        await A.PostJsonAsync("/namespaces", new { name = LimitedNamespace });
    }

    /// <summary>Stops both silos.</summary>
    public async Task StopAllAsync()
    {
        await B.DisposeAsync();
        await A.DisposeAsync();
    }

    /// <summary>Starts two new silos on the same Redis and NATS.</summary>
    public async Task StartAllAsync()
    {
        A = await StartSiloAsync();
        B = await StartSiloAsync();
    }

    public Task<ConveyorTestHost> StartSiloAsync() => ConveyorTestHost.StartAsync(
        o =>
        {
            o.Mode = ConveyorMode.Cluster;
            o.NatsUrl = Nats.Url;
            o.RedisConnectionString = Redis.ConnectionString;
            o.ServiceId = ServiceId;
            o.ClusterId = ServiceId;
            o.AdvertisedAddress = "127.0.0.1";
        },
        Settings);

    public async Task DisposeAsync()
    {
        foreach (var host in new[] { B, A })
        {
            if (host is not null)
            {
                await host.DisposeAsync();
            }
        }

        if (_redis is not null)
        {
            await _redis.DisposeAsync();
        }

        if (_nats is not null)
        {
            await _nats.DisposeAsync();
        }
    }
}

[CollectionDefinition(Name)]
public sealed class ClusterFlowCollection : ICollectionFixture<ClusterFlowFixture>
{
    public const string Name = "cluster-flow";
}

/// <summary>Queues and limits hold across two silos: every queue is one grain activation in the cluster.</summary>
[Collection(ClusterFlowCollection.Name)]
public sealed class ClusterFlowTests(ClusterFlowFixture fx)
{
    [Fact]
    public async Task Runs_triggered_through_two_silos_queue_in_one_priority_order_and_never_overlap()
    {
        var (type, driver) = await Flow.PipelineAsync(fx.A, fx.Nats.Url, new { concurrency = 1 });
        await using var _ = driver;
        var first = await Flow.TriggerAsync(fx.A, type);
        await Flow.WaitForStatusAsync(fx.B, first, "Running");

        var low = await Flow.TriggerAsync(fx.B, type, priority: 2);
        var high = await Flow.TriggerAsync(fx.A, type, priority: 4);
        var normal1 = await Flow.TriggerAsync(fx.B, type);
        var normal2 = await Flow.TriggerAsync(fx.A, type);
        Assert.Equal(1, await Flow.PositionAsync(fx.B, high));
        Assert.Equal(4, await Flow.PositionAsync(fx.A, low));

        driver.Open();
        var expected = new[] { first, high, normal1, normal2, low };
        var runs = new List<JsonElement>();
        foreach (var id in expected)
        {
            runs.Add(await fx.A.WaitForRunAsync(id, Flow.Timeout));
        }

        Assert.Equal(expected, driver.Order);
        Assert.All(runs, r => Assert.Equal("Succeeded", r.GetProperty("status").GetString()));
        Flow.AssertSerial(runs);
    }

    [Fact]
    public async Task Namespace_limit_holds_across_pipelines_and_silos_and_the_freed_slot_goes_to_the_highest_priority()
    {
        const string ns = $"/namespaces/{ClusterFlowFixture.LimitedNamespace}";
        var (p1, d1) = await Flow.PipelineAsync(fx.A, fx.Nats.Url, new { }, ns);
        await using var _1 = d1;
        var (p2, d2) = await Flow.PipelineAsync(fx.B, fx.Nats.Url, new { }, ns);
        await using var _2 = d2;

        var a = await Flow.TriggerAsync(fx.A, p1, prefix: ns);
        var b = await Flow.TriggerAsync(fx.B, p2, prefix: ns);
        await Flow.WaitForStatusAsync(fx.A, a, "Running", ns);
        await Flow.WaitForStatusAsync(fx.A, b, "Running", ns);
        var c = await Flow.TriggerAsync(fx.B, p1, prefix: ns);
        var d = await Flow.TriggerAsync(fx.A, p2, priority: 5, prefix: ns);
        Assert.Equal(2, await Flow.PositionAsync(fx.A, c, ns));
        Assert.Equal(1, await Flow.PositionAsync(fx.B, d, ns));
        var queue = await fx.B.GetJsonAsync($"{ns}/pipelines/{p1}/queue");
        Assert.Equal(2, queue.GetProperty("namespaceLimit").GetInt32());
        Assert.Equal(2, queue.GetProperty("namespaceActive").GetInt32());

        d1.Release(a);
        await Flow.WaitForStatusAsync(fx.B, d, "Running", ns);
        Assert.Equal("Queued", (await fx.A.GetJsonAsync($"{ns}/runs/{c}")).GetProperty("status").GetString());

        d1.Open();
        d2.Open();
        var runs = new List<JsonElement>();
        foreach (var id in new[] { a, b, c, d })
        {
            runs.Add(await Flow.WaitForStatusAsync(fx.A, id, "Succeeded", ns));
        }

        // At most two of the four were ever active at once.
        var events = runs.SelectMany(r => new[] { (At: r.GetProperty("startedAt").GetDateTimeOffset(), Delta: 1), (At: r.GetProperty("finishedAt").GetDateTimeOffset(), Delta: -1) })
            .OrderBy(e => e.At).ThenBy(e => e.Delta);
        var active = 0;
        foreach (var e in events)
        {
            active += e.Delta;
            Assert.True(active <= 2, "more than two runs of the namespace were active at once");
        }
    }

    [Fact]
    public async Task Schedule_fires_once_per_tick_across_two_silos_and_once_for_the_ticks_missed_while_both_were_down()
    {
        var (type, driver) = await Flow.PipelineAsync(fx.A, fx.Nats.Url, new
        {
            schedules = new[] { new { name = "every-2s", cron = "*/2 * * * * *", timeZone = "Europe/Berlin", resource = "main", priority = 2 } },
        });
        await using var _ = driver;
        driver.Open();

        async Task<List<JsonElement>> ScheduledRunsAsync(ConveyorTestHost host) =>
            (await host.GetJsonAsync($"/pipelines/{type}/runs?limit=100")).GetProperty("items").EnumerateArray()
                .Select(r => r.GetProperty("id").GetString()!).ToList() is var ids
                ? (await Task.WhenAll(ids.Select(id => host.GetJsonAsync($"/runs/{id}")))).ToList()
                : [];

        await Eventually.TrueAsync(async () => (await ScheduledRunsAsync(fx.B)).Count >= 3, Flow.Timeout, "the schedule fires");
        var stopping = DateTimeOffset.UtcNow;
        await fx.StopAllAsync();
        var down = DateTimeOffset.UtcNow;
        await Task.Delay(TimeSpan.FromSeconds(7));
        var up = DateTimeOffset.UtcNow;
        await fx.StartAllAsync();
        await Eventually.TrueAsync(
            async () => (await ScheduledRunsAsync(fx.A)).Count(r => DateTimeOffset.Parse(r.GetProperty("triggerId").GetString()!, System.Globalization.CultureInfo.InvariantCulture) > up) >= 2,
            Flow.Timeout,
            "the schedule fires again after the restart");

        var stored = await fx.A.GetJsonAsync($"/pipelines/{type}");
        var withoutSchedules = System.Text.Json.Nodes.JsonNode.Parse(stored.GetRawText())!.AsObject();
        withoutSchedules.Remove("schedules");
        using (var put = await fx.A.Http.PutAsync($"/pipelines/{type}", new StringContent(withoutSchedules.ToJsonString(), System.Text.Encoding.UTF8, "application/json")))
        {
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        }

        var count = (await ScheduledRunsAsync(fx.B)).Count;
        await Task.Delay(TimeSpan.FromSeconds(3));
        var runs = await ScheduledRunsAsync(fx.B);
        Assert.Equal(count, runs.Count);

        var ticks = runs.Select(r => DateTimeOffset.Parse(r.GetProperty("triggerId").GetString()!, System.Globalization.CultureInfo.InvariantCulture)).OrderBy(t => t).ToList();
        Assert.Equal(ticks.Count, ticks.Distinct().Count());
        Assert.All(ticks, t => Assert.Equal(0, t.Second % 2));
        Assert.All(runs, r => Assert.Equal("schedule:every-2s", r.GetProperty("trigger").GetString()));
        Assert.All(runs, r => Assert.Equal(2, r.GetProperty("priority").GetInt32()));
        Assert.True(ticks.Count(t => t > down.AddSeconds(1) && t < up.AddSeconds(-1)) <= 1, $"at most one run for the ticks missed while down: {string.Join(", ", ticks.Select(t => t.ToString("HH:mm:ss", System.Globalization.CultureInfo.InvariantCulture)))}");

        // While a silo was up, every tick fired exactly once: no gaps and no doubles before the stop.
        var before = ticks.Where(t => t < stopping).ToList();
        for (var i = 1; i < before.Count; i++)
        {
            Assert.Equal(TimeSpan.FromSeconds(2), before[i] - before[i - 1]);
        }
    }
}
