using System.Collections.Concurrent;
using System.Text.Json;
using Conveyor.Grains.Abstractions;
using Conveyor.Testing;
using NATS.Client.Core;
using NATS.Client.JetStream;
using Conveyor.Contracts;
using StackExchange.Redis;

namespace Conveyor.Grains.Tests;

[Collection(ClusterCollection.Name)]
public sealed class RunGrainTests(ClusterFixture fx) : IAsyncLifetime
{
    private readonly string _type = "t" + Guid.NewGuid().ToString("N")[..8];
    private readonly string _driver = "d" + Guid.NewGuid().ToString("N")[..8];
    private NatsConnection? _nats;

    public Task InitializeAsync()
    {
        _nats = new NatsConnection(NatsOpts.Default with { Url = fx.Nats.Url });
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _nats!.DisposeAsync();

    private async Task<(IPipelineRunGrain Run, Guid Id)> StartRunAsync(int steps)
    {
        await fx.Grains.GetGrain<IResourceDefinitionGrain>(Names.DefinitionKey("default", _type))
            .CreateAsync(new ResourceDefinitionData { Name = _type, Schema = "{}" });
        var pipeline = await fx.Grains.GetGrain<IPipelineGrain>(Names.PipelineKey("default", _type)).PutAsync(new PipelineSpec
        {
            Name = _type,
            ResourceType = _type,
            Steps = Enumerable.Range(1, steps).Select(i => new StepSpec { Id = $"s{i}", Driver = _driver }).ToList(),
        });
        var id = Guid.NewGuid();
        var run = fx.Grains.GetGrain<IPipelineRunGrain>(id);
        await run.PrepareAsync(new RunPlan
        {
            Pipeline = pipeline,
            Resource = new ResourceData { Id = Guid.NewGuid().ToString(), Name = "r", Type = _type, Metadata = new() { ["version"] = "1" }, Spec = "{}", Version = 1 },
        });
        await run.StartAsync();
        return (run, id);
    }

    private Task<ConcurrentQueue<INatsJSMsg<byte[]>>> ConsumeAsync(CancellationToken ct) => DriverInbox.StartAsync(_nats!, _driver, _type, ct);

    /// <summary>A run of <paramref name="steps"/> steps, started with the driver's inbox open, once its first dispatch is in it.</summary>
    private async Task<(IPipelineRunGrain Run, ConcurrentQueue<INatsJSMsg<byte[]>> Received)> StartDispatchedRunAsync(int steps, CancellationToken ct)
    {
        var received = await ConsumeAsync(ct);
        var (run, _) = await StartRunAsync(steps);
        await Eventually.TrueAsync(() => received.Count == 1, TimeSpan.FromSeconds(15), "the first step is dispatched");
        return (run, received);
    }

    [Fact]
    public async Task Dispatch_decided_before_a_deactivation_is_published_by_the_next_activation()
    {
        // No driver yet: the step is decided and persisted but cannot be published.
        var (run, _) = await StartRunAsync(1);
        var state = (await run.GetAsync())!;
        Assert.Equal(StepStatus.Dispatched, state.Steps[0].Status);
        Assert.False(state.Steps[0].Current!.Published);

        // The activation goes away (as when its silo dies); its timer with it.
        await fx.Cluster.DeactivateAsync(run);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var received = await ConsumeAsync(cts.Token);

        await run.GetAsync(); // any call reactivates the grain, which re-drives its outbox
        await Eventually.TrueAsync(() => received.Count == 1, TimeSpan.FromSeconds(15), "the reactivated run publishes its pending dispatch");
        var msg = received.Single();
        Assert.Equal("s1", msg.Headers!["Conveyor-Step-Id"][0]);
        Assert.Equal("1", msg.Headers!["Conveyor-Attempt"][0]);
        await cts.CancelAsync();
    }

    [Fact]
    public async Task Republished_dispatch_is_deduplicated_by_its_message_id()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var (run, received) = await StartDispatchedRunAsync(1, cts.Token);

        // The confirmation was never persisted (it rides on the next write), so a new activation publishes again:
        // JetStream drops the copy because it carries the same Nats-Msg-Id.
        await fx.Cluster.DeactivateAsync(run);
        var state = (await run.GetAsync())!;
        await Eventually.TrueAsync(async () => (await run.GetAsync())!.Steps[0].Current!.Published, TimeSpan.FromSeconds(10), "re-published");
        await Task.Delay(500);
        Assert.Single(received);
        Assert.Equal(StepStatus.Dispatched, state.Steps[0].Status);
        await cts.CancelAsync();
    }

    [Fact]
    public async Task Result_is_applied_once_per_step_and_attempt_and_survives_reactivation()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var (run, received) = await StartDispatchedRunAsync(2, cts.Token);

        var result = new DriverResultInput { Driver = _driver, StepId = "s1", Attempt = 1, Success = true, Message = "ok", Data = """{"n":1}""" };
        Assert.Equal(ApplyOutcome.Applied, await run.ApplyResultAsync(result));
        Assert.Equal(ApplyOutcome.Duplicate, await run.ApplyResultAsync(result));
        Assert.Equal(ApplyOutcome.Stale, await run.ApplyResultAsync(new DriverResultInput { Driver = _driver, StepId = "s1", Attempt = 7, Success = false }));
        Assert.Equal(ApplyOutcome.UnknownStep, await run.ApplyResultAsync(new DriverResultInput { Driver = "other", StepId = "s1", Attempt = 1, Success = false }));
        Assert.Equal(ApplyOutcome.UnknownStep, await run.ApplyResultAsync(new DriverResultInput { Driver = "other", Success = true }));

        await fx.Cluster.DeactivateAsync(run);
        Assert.Equal(ApplyOutcome.Duplicate, await run.ApplyResultAsync(result));
        var state = (await run.GetAsync())!;
        Assert.Equal(StepStatus.Succeeded, state.Steps[0].Status);
        Assert.Equal("""{"n":1}""", state.Steps[0].Output);
        Assert.Equal(StepStatus.Dispatched, state.Steps[1].Status);

        // Step 2's payload carries step 1's result the original way.
        await Eventually.TrueAsync(() => received.Count >= 2, TimeSpan.FromSeconds(15), "step 2 is dispatched");
        var second = JsonDocument.Parse(received.ElementAt(1).Data!).RootElement;
        Assert.Equal("process", second.GetProperty("event").GetString());
        var metadata = JsonDocument.Parse(second.GetProperty("payload").GetString()!).RootElement.GetProperty("metadata");
        Assert.Equal(
            $$"""{"success":true,"message":"ok","data":{"n":1},"driver":"{{_driver}}"}""",
            metadata.GetProperty("driverresults." + _driver).GetString());
        await cts.CancelAsync();
    }

    [Fact]
    public async Task A_result_for_an_attempt_another_activation_dispatched_is_applied_not_dropped()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var (run, _) = await StartDispatchedRunAsync(2, cts.Token);
        var grain = run.GetGrainId();

        // Another activation of the run (as while silos cannot agree on membership) applies s1's result and dispatches
        // s2: storage moves on, this activation's memory does not.
        var stored = (await fx.Storage.Inner.ReadAsync(grain))!;
        var other = new Runs.Engine.RunStateMachine(stored.Run, new Runs.Engine.RunMachineOptions());
        var moved = other.Apply(new Runs.Engine.ApplyResults([new DriverResultInput { Driver = _driver, StepId = "s1", Attempt = 1, Success = true, Message = "ok" }]), DateTimeOffset.UtcNow);
        Assert.Equal(ApplyOutcome.Applied, moved.Outcomes![0]);
        Assert.Equal(StepStatus.Dispatched, other.Run.Steps[1].Status);
        await fx.Storage.Inner.WriteAsync(grain, other.Run, stored.Version, Runs.RunChanges.All);

        // s2's result reaches this activation, which still holds s2 as pending: it reads storage before dropping it.
        var result = new DriverResultInput { Driver = _driver, StepId = "s2", Attempt = 1, Success = true, Message = "done" };
        Assert.Equal(ApplyOutcome.Applied, await run.ApplyResultAsync(result));
        var state = (await run.GetAsync())!;
        Assert.Equal([StepStatus.Succeeded, StepStatus.Succeeded], state.Steps.Select(st => st.Status));
        Assert.Equal(RunStatus.Succeeded, state.Status);
        // A result that is stale against storage too is still dropped.
        Assert.Equal(ApplyOutcome.Duplicate, await run.ApplyResultAsync(result));
        await cts.CancelAsync();
    }

    [Fact]
    public async Task Concurrent_results_are_group_committed_each_exactly_once()
    {
        await fx.Grains.GetGrain<IResourceDefinitionGrain>(Names.DefinitionKey("default", _type))
            .CreateAsync(new ResourceDefinitionData { Name = _type, Schema = "{}" });
        var steps = Enumerable.Range(0, 50).Select(i => new StepSpec { Id = $"p{i}", Driver = _driver, DependsOn = [], DeclaredDependsOn = true }).ToList();
        var pipeline = await fx.Grains.GetGrain<IPipelineGrain>(Names.PipelineKey("default", _type))
            .PutAsync(new PipelineSpec { Name = _type, ResourceType = _type, Steps = steps });
        var run = fx.Grains.GetGrain<IPipelineRunGrain>(Guid.NewGuid());
        await run.PrepareAsync(new RunPlan { Pipeline = pipeline, Resource = new ResourceData { Name = "r", Type = _type, Spec = "{}" } });
        await run.StartAsync();

        // 50 results and a duplicate of each, all at once: every call returns after its result is stored.
        var calls = steps.SelectMany(st => Enumerable.Range(0, 2).Select(_ =>
            run.ApplyResultAsync(new DriverResultInput { Driver = _driver, StepId = st.Id, Attempt = 1, Success = true, Message = st.Id }))).ToList();
        var outcomes = await Task.WhenAll(calls);

        Assert.Equal(50, outcomes.Count(o => o == ApplyOutcome.Applied));
        Assert.Equal(50, outcomes.Count(o => o == ApplyOutcome.Duplicate));
        await fx.Cluster.DeactivateAsync(run);
        var state = (await run.GetAsync())!;
        Assert.Equal(RunStatus.Succeeded, state.Status);
        Assert.All(state.Steps, st => Assert.Equal(st.Id, Assert.Single(st.Attempts).Message));
        Assert.Equal(Enumerable.Range(1, 50), state.Steps.Select(st => st.CompletionOrder).Order());
    }

    [Fact]
    public async Task Result_without_step_goes_to_the_attempt_its_driver_received_first()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var received = await ConsumeAsync(cts.Token);
        await fx.Grains.GetGrain<IResourceDefinitionGrain>(Names.DefinitionKey("default", _type))
            .CreateAsync(new ResourceDefinitionData { Name = _type, Schema = "{}" });
        var steps = Enumerable.Range(0, 8).Select(i => new StepSpec { Id = $"p{i}", Driver = _driver, DependsOn = [], DeclaredDependsOn = true }).ToList();
        var pipeline = await fx.Grains.GetGrain<IPipelineGrain>(Names.PipelineKey("default", _type))
            .PutAsync(new PipelineSpec { Name = _type, ResourceType = _type, Steps = steps });
        var run = fx.Grains.GetGrain<IPipelineRunGrain>(Guid.NewGuid());
        await run.PrepareAsync(new RunPlan { Pipeline = pipeline, Resource = new ResourceData { Name = "r", Type = _type, Spec = "{}" } });
        await run.StartAsync();
        await Eventually.TrueAsync(() => received.Count == 8, TimeSpan.FromSeconds(15), "all eight steps are dispatched");

        // An original driver answers in the order it receives: the stream order, whatever the step order.
        foreach (var msg in received.OrderBy(m => m.Metadata!.Value.Sequence.Stream))
        {
            var step = msg.Headers!["Conveyor-Step-Id"][0];
            Assert.Equal(ApplyOutcome.Applied, await run.ApplyResultAsync(new DriverResultInput { Driver = _driver, Success = true, Message = "answer to " + step }));
        }

        var state = (await run.GetAsync())!;
        Assert.Equal(RunStatus.Succeeded, state.Status);
        Assert.All(state.Steps, st => Assert.Equal("answer to " + st.Id, st.Current!.Message));
        await cts.CancelAsync();
    }

    [Theory]
    [InlineData(WriteFault.Lost)]
    [InlineData(WriteFault.StoredButFailed)]
    public async Task A_failed_write_during_group_commit_loses_no_successor_dispatch(WriteFault fault)
    {
        // Two roots (a, b) and a successor of b (c). a's result is applied while b's waits behind the write; that write
        // fails, so the same activation reloads what storage holds and goes on with b's result, which makes c ready.
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var received = await ConsumeAsync(cts.Token);
        await fx.Grains.GetGrain<IResourceDefinitionGrain>(Names.DefinitionKey("default", _type))
            .CreateAsync(new ResourceDefinitionData { Name = _type, Schema = "{}" });
        var pipeline = await fx.Grains.GetGrain<IPipelineGrain>(Names.PipelineKey("default", _type)).PutAsync(new PipelineSpec
        {
            Name = _type,
            ResourceType = _type,
            Steps =
            [
                new StepSpec { Id = "a", Driver = _driver, DependsOn = [], DeclaredDependsOn = true },
                new StepSpec { Id = "b", Driver = _driver, DependsOn = [], DeclaredDependsOn = true },
                new StepSpec { Id = "c", Driver = _driver, DependsOn = ["b"], DeclaredDependsOn = true },
            ],
        });
        var run = fx.Grains.GetGrain<IPipelineRunGrain>(Guid.NewGuid());
        await run.PrepareAsync(new RunPlan { Pipeline = pipeline, Resource = new ResourceData { Name = "r", Type = _type, Spec = "{}" } });
        await run.StartAsync();
        await Eventually.TrueAsync(() => received.Count == 2, TimeSpan.FromSeconds(15), "a and b are dispatched");
        DriverResultInput Result(string step) => new() { Driver = _driver, StepId = step, Attempt = 1, Success = true, Message = step };
        var wait = TimeSpan.FromSeconds(15);

        var failing = fx.Storage.HoldNextWrite(run.GetGrainId(), fault);
        var first = run.ApplyResultAsync(Result("a"));
        await failing.Held.Task.WaitAsync(wait);
        var second = run.ApplyResultAsync(Result("b"));
        await fx.Arrivals.Queued(run.GetPrimaryKey(), "b").WaitAsync(wait);
        failing.Release.SetResult();
        await Assert.ThrowsAnyAsync<Exception>(() => first);
        Assert.Equal(ApplyOutcome.Applied, await second);
        await Eventually.TrueAsync(
            () => received.Any(m => m.Headers!["Conveyor-Step-Id"][0] == "c"), wait, "c is dispatched once b has succeeded");

        // JetStream redelivers a's result: applied now, or found stored when the failed write had landed.
        Assert.Equal(fault == WriteFault.Lost ? ApplyOutcome.Applied : ApplyOutcome.Duplicate, await run.ApplyResultAsync(Result("a")));
        var state = (await run.GetAsync())!;
        Assert.Equal([StepStatus.Succeeded, StepStatus.Succeeded, StepStatus.Dispatched], state.Steps.Select(st => st.Status));
        Assert.Equal(ApplyOutcome.Applied, await run.ApplyResultAsync(Result("c")));
        Assert.Equal(RunStatus.Succeeded, (await run.GetAsync())!.Status);
        await cts.CancelAsync();
    }

    [Fact]
    public async Task A_run_keeps_the_pipeline_revision_it_started_with()
    {
        var (run, _) = await StartRunAsync(1);
        var pipelines = fx.Grains.GetGrain<IPipelineGrain>(Names.PipelineKey("default", _type));
        var updated = await pipelines.PutAsync(new PipelineSpec
        {
            Name = _type,
            ResourceType = _type,
            Steps = [new StepSpec { Id = "other", Driver = "x" }, new StepSpec { Id = "more", Driver = "y" }],
        });

        Assert.Equal(2, updated.Revision);
        var state = (await run.GetAsync())!;
        Assert.Equal(1, state.Plan.Pipeline.Revision);
        Assert.Equal(["s1"], state.Steps.Select(s => s.Id));
    }

    [Fact]
    public async Task A_finished_run_stores_that_it_is_settled_leaves_memory_and_is_loaded_again_with_nothing_to_redo()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var (run, received) = await StartDispatchedRunAsync(1, cts.Token);
        Assert.Equal(ApplyOutcome.Applied, await run.ApplyResultAsync(new DriverResultInput { Driver = _driver, StepId = "s1", Attempt = 1, Success = true }));

        // It stays for the reads right after its end, then leaves memory.
        var grain = run.GetGrainId();
        Assert.Equal(RunStatus.Succeeded, (await run.GetAsync())!.Status);
        await Eventually.TrueAsync(async () => !await fx.IsResidentAsync(grain), TimeSpan.FromSeconds(30), "the finished run leaves memory after its residence");

        // Its last events are out and its keepalive is gone: storage says so, so no later activation publishes them again.
        Assert.True((await fx.Storage.ReadAsync(grain))?.Run is { Status: RunStatus.Succeeded, Outbox.Count: 0, EventOutbox.Count: 0 }, "the stored run is settled");

        // A read loads it again with nothing pending (no republished events, no timer), and it leaves again.
        var state = (await run.GetAsync())!;
        Assert.Equal(RunStatus.Succeeded, state.Status);
        Assert.Empty(state.Outbox);
        Assert.Empty(state.EventOutbox);
        var writes = fx.Storage.Writes.Count(w => w.Grain == grain);
        await Eventually.TrueAsync(async () => !await fx.IsResidentAsync(grain), TimeSpan.FromSeconds(30), "the run loaded for a read leaves again");
        Assert.Equal(writes, fx.Storage.Writes.Count(w => w.Grain == grain));
        await cts.CancelAsync();
    }

    [Fact]
    public async Task A_storage_failure_reaches_the_caller_as_the_error_it_is()
    {
        // Across silos (and to a client) a grain's exception is serialized: Redis' and NATS' own exception types must
        // arrive as themselves, so a caller can tell a lost connection from a refused request.
        var (run, _) = await StartRunAsync(1);
        var fault = fx.Storage.HoldNextWrite(run.GetGrainId(), WriteFault.RedisUnreachable);
        fault.Release.SetResult();
        var error = await Assert.ThrowsAsync<RedisConnectionException>(() => run.CancelAsync("stop"));
        Assert.Contains("injected: no connection", error.Message);
        Assert.Equal(RunStatus.Cancelled, (await run.CancelAsync("stop")).Status);
    }

    [Fact]
    public async Task Unknown_run_reports_unknown_without_creating_state()
    {
        var run = fx.Grains.GetGrain<IPipelineRunGrain>(Guid.NewGuid());
        Assert.Equal(ApplyOutcome.UnknownRun, await run.ApplyResultAsync(new DriverResultInput { Driver = "d", Success = true }));
        Assert.Null(await run.GetAsync());
    }
}
