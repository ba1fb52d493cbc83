using System.Collections.Concurrent;
using System.Text.Json;
using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Runs;
using Conveyor.Testing;
using Microsoft.Extensions.DependencyInjection;
using NATS.Client.Core;
using NATS.Client.JetStream;
using Orleans.Storage;

namespace Conveyor.Grains.Tests;

/// <summary>
/// How runs are stored: a transition writes only the steps it changed, what is read back is exactly what was in
/// memory, runs stored whole by earlier versions carry on, and two writers of one run cannot both commit.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class RunStoreTests(ClusterFixture fx) : IAsyncLifetime
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);
    private readonly string _type = "t" + Guid.NewGuid().ToString("N")[..8];
    private readonly string _driver = "d" + Guid.NewGuid().ToString("N")[..8];
    private readonly CancellationTokenSource _cts = new(TimeSpan.FromSeconds(60));
    private NatsConnection? _nats;
    private ConcurrentQueue<INatsJSMsg<byte[]>> _received = new();

    public async Task InitializeAsync()
    {
        _nats = new NatsConnection(NatsOpts.Default with { Url = fx.Nats.Url });
        _received = await DriverInbox.StartAsync(_nats, _driver, _type, _cts.Token);
        await fx.Grains.GetGrain<IResourceDefinitionGrain>(Names.DefinitionKey("default", _type))
            .CreateAsync(new ResourceDefinitionData { Name = _type, Schema = "{}" });
    }

    public async Task DisposeAsync()
    {
        await _cts.CancelAsync();
        await _nats!.DisposeAsync();
        _cts.Dispose();
    }

    private async Task<IPipelineRunGrain> StartAsync(List<StepSpec> steps, RetryPolicy? retry = null)
    {
        var pipeline = await fx.Grains.GetGrain<IPipelineGrain>(Names.PipelineKey("default", _type)).PutAsync(new PipelineSpec
        {
            Name = _type,
            ResourceType = _type,
            Steps = steps,
            Retry = retry,
        });
        var run = fx.Grains.GetGrain<IPipelineRunGrain>(Guid.NewGuid());
        await run.PrepareAsync(new RunPlan { Pipeline = pipeline, Resource = new ResourceData { Name = "r", Type = _type, Spec = "{}" } });
        await run.StartAsync();
        return run;
    }

    private StepSpec Step(string id, params string[] dependsOn) => new() { Id = id, Driver = _driver, DependsOn = [.. dependsOn], DeclaredDependsOn = true };

    private DriverResultInput Result(string step, int attempt = 1, bool success = true) =>
        new() { Driver = _driver, StepId = step, Attempt = attempt, Success = success, Message = $"{step}#{attempt}", Data = $$"""{"step":"{{step}}"}""" };

    private Task Dispatched(string step, int attempt = 1) => Eventually.TrueAsync(
        () => _received.Any(m => m.Headers!["Conveyor-Step-Id"][0] == step && m.Headers["Conveyor-Attempt"][0] == attempt.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        Wait,
        $"{step} attempt {attempt} is dispatched");

    /// <summary>
    /// The whole run as it stood at its last write, against what storage gives back: equal, although each write stored
    /// only what it changed. (Confirmations made after a write, such as a dispatch JetStream acknowledged, ride on the
    /// next write by design, so the comparison is with the last write rather than with memory.) Then a fresh
    /// activation reads that same record.
    /// </summary>
    private async Task AssertReadBackEqualsLastWriteAsync(IPipelineRunGrain run)
    {
        var grain = run.GetGrainId();
        await fx.Cluster.DeactivateAsync(run);
        Assert.Equal(fx.Storage.LastWritten(grain), JsonSerializer.Serialize((await fx.Storage.Inner.ReadAsync(grain))!.Run));
        Assert.NotNull(await run.GetAsync());
    }

    [Fact]
    public async Task A_transition_writes_only_the_steps_it_changed()
    {
        var steps = Enumerable.Range(0, 40).Select(i => i == 0 ? Step("s0") : Step($"s{i}", $"s{i - 1}")).ToList();
        var run = await StartAsync(steps);
        for (var i = 0; i < steps.Count; i++)
        {
            await Dispatched($"s{i}");
            Assert.Equal(ApplyOutcome.Applied, await run.ApplyResultAsync(Result($"s{i}")));
        }

        Assert.Equal(RunStatus.Succeeded, (await run.GetAsync())!.Status);
        var writes = fx.Storage.Writes.Where(w => w.Grain == run.GetGrainId()).ToList();
        // The first write stores the run whole, plan included; each later one the finished step and the next at most.
        Assert.Equal((null, true), (writes[0].Steps, writes[0].Plan));
        Assert.All(writes.Skip(1), w => Assert.True(w.Steps <= 2 && !w.Plan, $"a transition wrote {w.Steps?.ToString() ?? "all"} steps, plan: {w.Plan}"));
        Assert.True(writes.Count >= steps.Count + 1, $"{writes.Count} writes for {steps.Count} transitions");
        await AssertReadBackEqualsLastWriteAsync(run);
    }

    [Fact]
    public async Task What_storage_gives_back_equals_the_last_write_through_retries_and_joins()
    {
        // a → (b, c) → d; b fails once and is retried; every step's record survives reloads mid-run and at the end.
        var run = await StartAsync(
            [Step("a"), Step("b", "a"), Step("c", "a"), Step("d", "b", "c")],
            new RetryPolicy { MaxAttempts = 2, InitialDelay = TimeSpan.FromMilliseconds(50), Jitter = 0 });
        await Dispatched("a");
        Assert.Equal(ApplyOutcome.Applied, await run.ApplyResultAsync(Result("a")));
        await Dispatched("b");
        await Dispatched("c");
        await AssertReadBackEqualsLastWriteAsync(run);

        Assert.Equal(ApplyOutcome.Applied, await run.ApplyResultAsync(Result("b", success: false)));
        await Dispatched("b", attempt: 2);
        await AssertReadBackEqualsLastWriteAsync(run);
        Assert.Equal(ApplyOutcome.Applied, await run.ApplyResultAsync(Result("c")));
        Assert.Equal(ApplyOutcome.Applied, await run.ApplyResultAsync(Result("b", attempt: 2)));
        await Dispatched("d");
        await AssertReadBackEqualsLastWriteAsync(run);
        Assert.Equal(ApplyOutcome.Applied, await run.ApplyResultAsync(Result("d")));

        var state = (await run.GetAsync())!;
        Assert.Equal(RunStatus.Succeeded, state.Status);
        Assert.Equal([1, 2, 1, 1], state.Steps.Select(s => s.Attempts.Count));
        await AssertReadBackEqualsLastWriteAsync(run);
    }

    [Fact]
    public async Task A_run_stored_whole_by_the_grain_storage_is_read_and_carried_on()
    {
        // What an earlier version left in the Orleans grain storage: a two-step run, step 1 dispatched.
        var pipeline = await fx.Grains.GetGrain<IPipelineGrain>(Names.PipelineKey("default", _type)).PutAsync(new PipelineSpec
        {
            Name = _type,
            ResourceType = _type,
            Steps = [Step("s1"), Step("s2", "s1")],
        });
        var id = Guid.NewGuid();
        var now = DateTimeOffset.UtcNow;
        var old = new RunState
        {
            RunId = id,
            Plan = new RunPlan { Pipeline = pipeline, Resource = new ResourceData { Name = "r", Type = _type, Spec = "{}" } },
            Status = RunStatus.Running,
            Committed = true,
            RunAttempt = 1,
            CreatedAt = now,
            StartedAt = now,
            IndexedStatus = RunStatus.Running,
            ReportedStatus = RunStatus.Running,
            ReportedRunAttempt = 1,
            Steps =
            [
                new StepState { Id = "s1", Status = StepStatus.Dispatched, Attempts = [new AttemptState { Number = 1, DispatchedAt = now, Published = true, PublishedAt = now, StartReported = true }] },
                new StepState { Id = "s2" },
            ],
        };
        var run = fx.Grains.GetGrain<IPipelineRunGrain>(id);
        var storage = fx.Cluster.Silos[0].ServiceProvider.GetRequiredKeyedService<IGrainStorage>(ConveyorStorage.Name);
        await storage.WriteStateAsync(GrainStorageRunStore.StateName, run.GetGrainId(), new GrainState<RunState>(old));

        Assert.Equal(ApplyOutcome.Applied, await run.ApplyResultAsync(Result("s1")));
        await Dispatched("s2");
        var first = fx.Storage.Writes.First(w => w.Grain == run.GetGrainId());
        Assert.Equal((null, true), (first.Steps, first.Plan));
        await AssertReadBackEqualsLastWriteAsync(run);
        Assert.Equal(ApplyOutcome.Applied, await run.ApplyResultAsync(Result("s2")));
        Assert.Equal(RunStatus.Succeeded, (await run.GetAsync())!.Status);
    }

    [Fact]
    public async Task A_write_against_a_version_storage_has_moved_past_is_refused()
    {
        var run = await StartAsync([Step("a")]);
        var store = fx.Storage.Inner;
        var stored = (await store.ReadAsync(run.GetGrainId()))!;
        var next = await store.WriteAsync(run.GetGrainId(), stored.Run, stored.Version, new RunChanges([], IncludePlan: false));
        Assert.NotEqual(stored.Version, next);

        // A second activation that read the same version loses: nothing it holds is stored.
        stored.Run.Message = "from a stale activation";
        await Assert.ThrowsAsync<RunStoreConflictException>(
            () => store.WriteAsync(run.GetGrainId(), stored.Run, stored.Version, new RunChanges([], IncludePlan: false)));
        Assert.NotEqual("from a stale activation", (await store.ReadAsync(run.GetGrainId()))!.Run.Message);
    }
}
