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
        // Short enough for the schedule test's outage to miss ticks by more than it, long enough that a busy machine's
        // stall is not taken for a missed tick while the silos are up.
        ["Conveyor:Schedules:MisfireGrace"] = "00:00:10",
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

    public Task DisposeAsync() => Disposal.InOrderAsync(B, A, _redis, _nats);
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
    public async Task Schedules_fire_once_per_tick_across_two_silos_and_after_both_were_down_fire_the_latest_missed_tick_once_or_skip_it()
    {
        var grace = TimeSpan.Parse(ClusterFlowFixture.Settings["Conveyor:Schedules:MisfireGrace"]!, System.Globalization.CultureInfo.InvariantCulture);
        var period = TimeSpan.FromSeconds(2);
        var (type, driver) = await Flow.PipelineAsync(fx.A, fx.Nats.Url, new
        {
            schedules = new object[]
            {
                new { name = "catch-up", cron = "*/2 * * * * *", timeZone = "Europe/Berlin", resource = "main", priority = 2 },
                new { name = "skip", cron = "*/2 * * * * *", resource = "dev", missedFire = "skip" },
            },
        }, resources: ["main", "dev", "witness"]);
        await using var _ = driver;
        driver.Open();

        // The list is cheap to poll: a schedule's runs are told apart by their resource (catch-up: main, skip: dev).
        async Task<List<JsonElement>> SummariesAsync(ConveyorTestHost host) =>
            [.. (await host.GetJsonAsync($"/pipelines/{type}/runs?limit=100")).GetProperty("items").EnumerateArray()];
        static bool Of(JsonElement run, string resource) => run.GetProperty("resourceName").GetString() == resource;

        await Eventually.TrueAsync(
            async () => (await SummariesAsync(fx.B)) is var runs && runs.Count(r => Of(r, "main")) >= 3 && runs.Count(r => Of(r, "dev")) >= 3,
            Flow.Timeout,
            "both schedules fire");
        var stopping = DateTimeOffset.UtcNow;
        await fx.StopAllAsync();
        // Down for longer than the grace plus two periods (a lower bound: a slower machine only makes the outage
        // longer), so at least one tick is missed by more than the grace.
        await Task.Delay(grace + (2 * period));
        var up = DateTimeOffset.UtcNow;
        await fx.StartAllAsync();
        await Eventually.TrueAsync(
            async () => (await SummariesAsync(fx.A)).Where(r => r.GetProperty("createdAt").GetDateTimeOffset() > up).ToList() is var after
                && after.Count(r => Of(r, "main")) >= 3 && after.Count(r => Of(r, "dev")) >= 3,
            Flow.Timeout,
            "both schedules fire again after the restart");

        // Both schedules are replaced by a witness on the same cron. One grain fires all of a pipeline's schedules in one
        // tick, and the witness counts from its creation: once it has fired twice, a removed schedule still firing
        // would have fired for the same occurrences. So no run of a removed schedule may be for a tick at or after the
        // witness's first — proof by a later event, not by waiting and finding nothing.
        await PutSchedulesAsync(type, new { name = "witness", cron = "*/2 * * * * *", resource = "witness" });
        await Eventually.TrueAsync(
            async () => (await SummariesAsync(fx.B)).Count(r => Of(r, "witness")) >= 2,
            Flow.Timeout,
            "the witness schedule fires twice");
        var summaries = await SummariesAsync(fx.B);
        var runs = (await Task.WhenAll(summaries.Select(r => fx.B.GetJsonAsync($"/runs/{r.GetProperty("id").GetString()}")))).ToList();
        await PutSchedulesAsync(type);

        static DateTimeOffset Tick(JsonElement run) => DateTimeOffset.Parse(run.GetProperty("triggerId").GetString()!, System.Globalization.CultureInfo.InvariantCulture);
        static string Show(IEnumerable<DateTimeOffset> ticks) => string.Join(", ", ticks.Select(t => t.ToString("HH:mm:ss", System.Globalization.CultureInfo.InvariantCulture)));
        var catchUp = runs.Where(r => r.GetProperty("trigger").GetString() == "schedule:catch-up").OrderBy(Tick).ToList();
        var skip = runs.Where(r => r.GetProperty("trigger").GetString() == "schedule:skip").OrderBy(Tick).ToList();
        var witness = runs.Where(r => r.GetProperty("trigger").GetString() == "schedule:witness").OrderBy(Tick).ToList();
        Assert.Equal(runs.Count, catchUp.Count + skip.Count + witness.Count);
        Assert.True(witness.Count >= 2, $"{witness.Count} witness runs");
        var removedAt = Tick(witness[0]);
        Assert.True(catchUp.Concat(skip).All(r => Tick(r) < removedAt), $"a removed schedule fired at or after {removedAt:HH:mm:ss}: {Show(catchUp.Concat(skip).Select(Tick))}");
        Assert.All(catchUp, r => Assert.Equal(2, r.GetProperty("priority").GetInt32()));
        Assert.All(catchUp, r => Assert.Equal("main", r.GetProperty("resourceName").GetString()));
        Assert.All(skip, r => Assert.Equal(3, r.GetProperty("priority").GetInt32()));
        Assert.All(runs, r => Assert.Equal(0, Tick(r).Second % 2));

        foreach (var schedule in new[] { catchUp, skip })
        {
            var ticks = schedule.Select(Tick).ToList();
            Assert.Equal(ticks.Count, ticks.Distinct().Count());

            // While a silo was up, every tick fired exactly once: no gaps and no doubles, before the stop and after the restart.
            foreach (var window in new[] { ticks.Where(t => t < stopping).ToList(), schedule.Where(r => r.GetProperty("createdAt").GetDateTimeOffset() > up).Select(Tick).ToList() })
            {
                for (var i = 1; i < window.Count; i++)
                {
                    Assert.True(window[i] - window[i - 1] == period, $"consecutive ticks {period} apart: {Show(window)}");
                }
            }
        }

        // fireOnce: after the restart, one run for the latest occurrence that was more than the grace late — the first
        // run after the restart, late beyond the grace, with the ticks before it (back to the stop) dropped.
        var catchUpAfter = catchUp.Where(r => r.GetProperty("createdAt").GetDateTimeOffset() > up).ToList();
        var missed = catchUpAfter[0];
        Assert.True(missed.GetProperty("createdAt").GetDateTimeOffset() - Tick(missed) > grace, $"the first run after the restart is a catch-up for a missed tick: {missed}");
        var beforeStop = catchUp.Where(r => r.GetProperty("createdAt").GetDateTimeOffset() < up).Select(Tick).Max();
        Assert.True(Tick(missed) - beforeStop > period, $"older missed ticks were dropped: {Show(catchUp.Select(Tick))}");

        // skip: nothing for the missed ticks; it starts again with the first on-time tick, the one right after the
        // catch-up's. So the catch-up really was the latest missed occurrence.
        var skipAfter = skip.Where(r => r.GetProperty("createdAt").GetDateTimeOffset() > up).Select(Tick).ToList();
        Assert.Equal(Tick(catchUpAfter[1]), skipAfter[0]);
        Assert.Equal(Tick(missed) + period, skipAfter[0]);
        Assert.DoesNotContain(skip, r => Tick(r) == Tick(missed));
    }

    /// <summary>Stores the pipeline again with these schedules (none: without any).</summary>
    private async Task PutSchedulesAsync(string pipeline, params object[] schedules)
    {
        var stored = await fx.A.GetJsonAsync($"/pipelines/{pipeline}");
        var replaced = System.Text.Json.Nodes.JsonNode.Parse(stored.GetRawText())!.AsObject();
        replaced.Remove("schedules");
        if (schedules.Length > 0)
        {
            replaced["schedules"] = JsonSerializer.SerializeToNode(schedules);
        }

        using var put = await fx.A.Http.PutAsync($"/pipelines/{pipeline}", new StringContent(replaced.ToJsonString(), System.Text.Encoding.UTF8, "application/json"));
        Assert.True(put.StatusCode == HttpStatusCode.OK, $"PUT /pipelines/{pipeline}: {(int)put.StatusCode} {await put.Content.ReadAsStringAsync()}");
    }
}
