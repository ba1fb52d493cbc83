using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Flow;
using Conveyor.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace Conveyor.IntegrationTests;

/// <summary>A raw driver whose answer for a run waits until the test releases that run.</summary>
public sealed class HeldDriver : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _gates = new();
    private volatile bool _open;

    private HeldDriver(RawDriver raw) => Raw = raw;

    public RawDriver Raw { get; private set; }

    /// <summary>Run ids in the order their first step reached the driver.</summary>
    public List<string> Order => Raw.Received.Select(r => r.Message.GetProperty("run_id").GetString()!).ToList();

    public static async Task<HeldDriver> StartAsync(string natsUrl, string driver, string type)
    {
        HeldDriver? held = null;
        var raw = await RawDriver.StartAsync(natsUrl, driver, $"drivers.{driver}.resources.{type}", async m =>
        {
            await held!.Gate(m.GetProperty("run_id").GetString()!).Task;
            return (true, "done", (JsonNode?)null);
        });
        held = new HeldDriver(raw);
        return held;
    }

    public void Release(string runId) => Gate(runId).TrySetResult();

    /// <summary>From now on every run is answered at once.</summary>
    public void Open()
    {
        _open = true;
        foreach (var gate in _gates.Values)
        {
            gate.TrySetResult();
        }
    }

    private TaskCompletionSource Gate(string runId)
    {
        var gate = _gates.GetOrAdd(runId, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        if (_open)
        {
            gate.TrySetResult();
        }

        return gate;
    }

    public ValueTask DisposeAsync()
    {
        Open();
        return Raw.DisposeAsync();
    }
}

/// <summary>Shared steps of the flow-control tests, against any host.</summary>
internal static class Flow
{
    public static readonly TimeSpan Timeout = Deadlines.Event;

    public static async Task<(string Type, HeldDriver Driver)> PipelineAsync(ConveyorTestHost host, string natsUrl, object extra, string prefix = "", string? type = null, string[]? resources = null)
    {
        type ??= EngineFixture.Unique("q");
        var driver = EngineFixture.Unique("drv");
        await host.PostJsonAsync($"{prefix}/resource-definitions", new
        {
            name = type,
            version = "1",
            schema = new { type = "object", properties = new { branch = new { type = "string" } } },
        });
        var pipeline = JsonSerializer.SerializeToNode(new { name = type, resource = type, steps = new[] { new { id = "only", driver } } })!.AsObject();
        foreach (var (key, value) in JsonSerializer.SerializeToNode(extra)!.AsObject().ToList())
        {
            pipeline[key] = value?.DeepClone();
        }

        await host.PostJsonAsync($"{prefix}/pipelines", pipeline);
        foreach (var name in resources ?? ["main", "dev"])
        {
            await host.PostJsonAsync($"{prefix}/resources", new { name, resource = type, spec = new { branch = name } });
        }

        return (type, await HeldDriver.StartAsync(natsUrl, driver, type));
    }

    public static async Task<string> TriggerAsync(ConveyorTestHost host, string pipeline, string resource = "main", int priority = 3, string prefix = "") =>
        (await host.PostJsonAsync($"{prefix}/pipelines/{pipeline}/runs", new { resource, priority })).GetProperty("id").GetString()!;

    public static async Task<JsonElement> WaitForStatusAsync(ConveyorTestHost host, string runId, string status, string prefix = "")
    {
        JsonElement run = default;
        await Eventually.TrueAsync(
            async () => (run = await host.GetJsonAsync($"{prefix}/runs/{runId}")).GetProperty("status").GetString() == status,
            Timeout,
            $"run {runId} should become {status}");
        return run;
    }

    public static async Task<int?> PositionAsync(ConveyorTestHost host, string runId, string prefix = "")
    {
        var run = await host.GetJsonAsync($"{prefix}/runs/{runId}");
        return run.TryGetProperty("queuePosition", out var p) ? p.GetInt32() : null;
    }

    /// <summary>No two runs were active at the same time: their [startedAt, finishedAt] intervals do not overlap.</summary>
    public static void AssertSerial(IEnumerable<JsonElement> runs)
    {
        var spans = runs.Select(r => (Start: r.GetProperty("startedAt").GetDateTimeOffset(), End: r.GetProperty("finishedAt").GetDateTimeOffset()))
            .OrderBy(s => s.Start).ToList();
        for (var i = 1; i < spans.Count; i++)
        {
            Assert.True(spans[i].Start >= spans[i - 1].End, $"run {i} started at {spans[i].Start:O} before run {i - 1} ended at {spans[i - 1].End:O}");
        }
    }
}

/// <summary>Queues on one silo: priorities, concurrency groups, cancel while queued, reclaiming a leaked slot.</summary>
[Collection(EngineCollection.Name)]
public sealed class FlowControlTests(EngineFixture fx)
{
    [Fact]
    public async Task Queued_runs_start_in_priority_order_then_arrival_order_when_the_slot_frees()
    {
        var (type, driver) = await Flow.PipelineAsync(fx.Host, fx.Nats.Url, new { concurrency = 1 });
        await using var _ = driver;
        var first = await Flow.TriggerAsync(fx.Host, type);
        await Flow.WaitForStatusAsync(fx.Host, first, "Running");

        var low = await Flow.TriggerAsync(fx.Host, type, priority: 1);
        var high1 = await Flow.TriggerAsync(fx.Host, type, priority: 5);
        var normal = await Flow.TriggerAsync(fx.Host, type, priority: 3);
        var high2 = await Flow.TriggerAsync(fx.Host, type, priority: 5);

        var queued = await fx.Host.GetJsonAsync($"/runs/{low}");
        Assert.Equal("Queued", queued.GetProperty("status").GetString());
        Assert.Equal(JsonValueKind.Null, queued.GetProperty("startedAt").ValueKind);
        var positions = new List<int?>();
        foreach (var id in new[] { high1, high2, normal, low })
        {
            positions.Add(await Flow.PositionAsync(fx.Host, id));
        }

        Assert.Equal(new int?[] { 1, 2, 3, 4 }, positions);
        var queue = await fx.Host.GetJsonAsync($"/pipelines/{type}/queue");
        Assert.Equal(first, Assert.Single(queue.GetProperty("active").EnumerateArray()).GetProperty("id").GetString());
        Assert.Equal([high1, high2, normal, low], queue.GetProperty("queued").EnumerateArray().Select(q => q.GetProperty("id").GetString()));
        await Eventually.TrueAsync(() => driver.Raw.Received.Count == 1, Flow.Timeout, "the running run reaches its driver");
        Assert.Single(driver.Raw.Received);

        driver.Open();
        var runs = new List<JsonElement>();
        foreach (var id in new[] { first, high1, high2, normal, low })
        {
            runs.Add(await fx.Host.WaitForRunAsync(id, Flow.Timeout));
        }

        Assert.Equal([first, high1, high2, normal, low], driver.Order);
        Assert.All(runs, r => Assert.Equal("Succeeded", r.GetProperty("status").GetString()));
        Flow.AssertSerial(runs);
        await Eventually.TrueAsync(
            async () => (await fx.Host.GetJsonAsync($"/pipelines/{type}/queue")) is var q && q.GetProperty("active").GetArrayLength() + q.GetProperty("queued").GetArrayLength() == 0,
            Flow.Timeout,
            "every finished run gives its slot back");
    }

    [Fact]
    public async Task Concurrency_group_queues_a_newer_run_of_the_same_key_and_lets_other_keys_run()
    {
        var (type, driver) = await Flow.PipelineAsync(fx.Host, fx.Nats.Url, new { concurrencyGroup = new { key = "spec.branch" } });
        await using var _ = driver;
        var main1 = await Flow.TriggerAsync(fx.Host, type, "main");
        await Flow.WaitForStatusAsync(fx.Host, main1, "Running");
        var main2 = await Flow.TriggerAsync(fx.Host, type, "main");
        var dev1 = await Flow.TriggerAsync(fx.Host, type, "dev");

        await Flow.WaitForStatusAsync(fx.Host, dev1, "Running");
        var waiting = await Flow.WaitForStatusAsync(fx.Host, main2, "Queued");
        Assert.Equal(1, waiting.GetProperty("queuePosition").GetInt32());
        var queue = await fx.Host.GetJsonAsync($"/pipelines/{type}/queue");
        Assert.Equal("main", Assert.Single(queue.GetProperty("queued").EnumerateArray()).GetProperty("group").GetString());

        driver.Open();
        var runs = new[] { await fx.Host.WaitForRunAsync(main1, Flow.Timeout), await fx.Host.WaitForRunAsync(main2, Flow.Timeout) };
        Assert.All(runs, r => Assert.Equal("Succeeded", r.GetProperty("status").GetString()));
        Flow.AssertSerial(runs);
        Assert.Equal("Succeeded", (await fx.Host.WaitForRunAsync(dev1, Flow.Timeout)).GetProperty("status").GetString());
    }

    [Fact]
    public async Task Cancel_in_progress_cancels_the_older_runs_of_the_group_queued_or_running()
    {
        var (type, driver) = await Flow.PipelineAsync(fx.Host, fx.Nats.Url, new { concurrencyGroup = new { key = "spec.branch", onConflict = "cancel-in-progress" } });
        await using var _ = driver;
        var older = await Flow.TriggerAsync(fx.Host, type, "main");
        await Flow.WaitForStatusAsync(fx.Host, older, "Running");
        await Eventually.TrueAsync(() => driver.Raw.Received.Count == 1, Flow.Timeout, "the older run reaches its driver");

        var middle = await Flow.TriggerAsync(fx.Host, type, "main");
        var newest = await Flow.TriggerAsync(fx.Host, type, "main");

        var cancelled = await Flow.WaitForStatusAsync(fx.Host, older, "Cancelled");
        Assert.Contains("superseded by run", cancelled.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Contains("spec.branch=main", cancelled.GetProperty("message").GetString(), StringComparison.Ordinal);
        var skipped = await Flow.WaitForStatusAsync(fx.Host, middle, "Cancelled");
        Assert.Contains(newest, skipped.GetProperty("message").GetString(), StringComparison.Ordinal);
        await Eventually.TrueAsync(() => driver.Raw.Cancels.Any(c => c.GetProperty("run_id").GetString() == older), Flow.Timeout, "the older run's driver is told to stop");

        driver.Open();
        Assert.Equal("Succeeded", (await fx.Host.WaitForRunAsync(newest, Flow.Timeout)).GetProperty("status").GetString());
        Assert.Equal(newest, driver.Order[^1]);
    }

    [Fact]
    public async Task Cancelling_a_queued_run_removes_it_from_the_queue_and_frees_nothing_twice()
    {
        var (type, driver) = await Flow.PipelineAsync(fx.Host, fx.Nats.Url, new { concurrency = 1 });
        await using var _ = driver;
        var running = await Flow.TriggerAsync(fx.Host, type);
        await Flow.WaitForStatusAsync(fx.Host, running, "Running");
        var doomed = await Flow.TriggerAsync(fx.Host, type);
        var next = await Flow.TriggerAsync(fx.Host, type);
        Assert.Equal(2, await Flow.PositionAsync(fx.Host, next));

        var cancelled = await fx.Host.PostJsonAsync($"/runs/{doomed}/cancel", new { reason = "not needed" }, 200);
        Assert.Equal("Cancelled", cancelled.GetProperty("status").GetString());
        Assert.Equal("Skipped", cancelled.GetProperty("steps")[0].GetProperty("status").GetString());
        Assert.Equal(1, await Flow.PositionAsync(fx.Host, next));

        // The cancelled run never held a slot, so releasing it must not let a second run in next to the first. The
        // cancel answers only after the queue has taken the release (the run ends, stores it, then releases its slot
        // before the call returns), so the queue's own record already shows what the release decided.
        var queue = await fx.Host.GetJsonAsync($"/pipelines/{type}/queue");
        Assert.Equal([running], queue.GetProperty("active").EnumerateArray().Select(a => a.GetProperty("id").GetString()));
        Assert.Equal([next], queue.GetProperty("queued").EnumerateArray().Select(q => q.GetProperty("id").GetString()));
        Assert.Equal("Queued", (await fx.Host.GetJsonAsync($"/runs/{next}")).GetProperty("status").GetString());

        driver.Open();
        var runs = new[] { await fx.Host.WaitForRunAsync(running, Flow.Timeout), await fx.Host.WaitForRunAsync(next, Flow.Timeout) };
        Flow.AssertSerial(runs);
        Assert.Equal([running, next], driver.Order);
    }

    [Fact]
    public async Task A_slot_held_by_a_run_that_no_longer_exists_is_reclaimed_by_verification()
    {
        var (type, driver) = await Flow.PipelineAsync(fx.Host, fx.Nats.Url, new { concurrency = 1 });
        await using var _ = driver;
        driver.Open();
        var queue = fx.Host.Services.GetRequiredService<IGrainFactory>().GetGrain<IAdmissionGrain>(Names.PipelineKey(Names.DefaultNamespace, type));

        // A run that took the only slot and vanished without releasing it (its state lost, its silo gone).
        var ghost = Guid.NewGuid();
        Assert.True((await queue.AcquireAsync(new AdmissionRequest { RunId = ghost, Pipeline = type, Priority = 3, PipelineLimit = 1 })).Admitted);
        var stuck = await Flow.TriggerAsync(fx.Host, type);
        Assert.Equal("Queued", (await fx.Host.GetJsonAsync($"/runs/{stuck}")).GetProperty("status").GetString());

        await queue.VerifyAsync();
        Assert.Equal("Succeeded", (await fx.Host.WaitForRunAsync(stuck, Flow.Timeout)).GetProperty("status").GetString());
        await Eventually.TrueAsync(
            async () => await queue.GetSnapshotAsync() is { Active.Count: 0, Queued.Count: 0 },
            Flow.Timeout,
            "the finished run gives its slot back");
    }

    [Fact]
    public async Task Pipeline_concurrency_and_group_are_validated_and_echoed()
    {
        var type = EngineFixture.Unique("qv");
        await fx.CreateDefinitionAsync(type);
        using var bad = await fx.Host.Http.PostAsync("/pipelines", new StringContent(
            JsonSerializer.Serialize(new { name = type, resource = type, concurrency = 0, concurrencyGroup = new { key = "spec..x", onConflict = "later" }, steps = new[] { new { id = "a", driver = "d" } } }),
            System.Text.Encoding.UTF8,
            "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        var problem = JsonDocument.Parse(await bad.Content.ReadAsStringAsync()).RootElement.GetProperty("errors");
        Assert.True(problem.TryGetProperty("concurrencyGroup.onConflict", out _), problem.ToString());
        using var missing = await fx.Host.Http.GetAsync($"/pipelines/{type}");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);

        await fx.Host.PostJsonAsync("/pipelines", new { name = type, resource = type, concurrency = 0, concurrencyGroup = new { key = "spec..x" }, steps = new[] { new { id = "a", driver = "d" } } }, 400);
        var stored = await fx.Host.PostJsonAsync("/pipelines", new { name = type, resource = type, concurrency = 2, concurrencyGroup = new { key = "metadata.team", onConflict = "cancel-in-progress" }, steps = new[] { new { id = "a", driver = "d" } } });
        Assert.Equal(2, stored.GetProperty("concurrency").GetInt32());
        Assert.Equal("metadata.team", stored.GetProperty("concurrencyGroup").GetProperty("key").GetString());
        Assert.Equal("cancel-in-progress", stored.GetProperty("concurrencyGroup").GetProperty("onConflict").GetString());
    }
}
