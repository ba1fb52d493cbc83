using System.Globalization;
using System.Text.Json;
using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Nats;
using Conveyor.Grains.Resources;
using Microsoft.Extensions.Logging;
using NATS.Client.Core;

namespace Conveyor.Grains.Runs;

/// <summary>
/// One pipeline run: a durable DAG state machine. Every transition is persisted before its side effect is published
/// (outbox order): dispatches decided but not confirmed are re-published on reactivation with the same
/// <c>Nats-Msg-Id</c>, and a result is applied at most once per (step, attempt). A reminder keeps a run with pending
/// work alive across silo loss; it is removed when the run ends.
/// </summary>
public sealed partial class PipelineRunGrain(
    [PersistentState("run", ConveyorStorage.Name)] IPersistentState<RunState> state,
    IGrainFactory grains,
    DriverDispatcher dispatcher,
    TimeProvider time,
    ILogger<PipelineRunGrain> logger) : Grain, IPipelineRunGrain, IRemindable
{
    private const string KeepAliveReminder = "keepalive";

    /// <summary>How long a prepared run waits for its resource to commit before it checks on its own.</summary>
    private static readonly TimeSpan CommitGrace = TimeSpan.FromSeconds(30);

    private IGrainTimer? _redriveTimer;
    private Dictionary<string, StepSpec>? _specs;

    private RunState Run => state.State;

    private Dictionary<string, StepSpec> Specs => _specs ??= Run.Plan.Pipeline.Steps.ToDictionary(s => s.Id, StringComparer.Ordinal);

    /// <inheritdoc />
    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        if (state.RecordExists && Run.Committed && !Run.Status.IsTerminal())
        {
            // Whatever was decided but not confirmed before the previous activation ended is published again.
            ScheduleRedrive(TimeSpan.Zero);
        }

        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public async Task PrepareAsync(RunPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        if (state.RecordExists)
        {
            return;
        }

        Run.RunId = this.GetPrimaryKey();
        Run.Plan = plan;
        Run.Status = RunStatus.Pending;
        Run.CreatedAt = time.GetUtcNow();
        Run.Steps = plan.Pipeline.Steps.Select(s => new StepState { Id = s.Id }).ToList();
        _specs = null;
        await this.RegisterOrUpdateReminder(KeepAliveReminder, TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(1));
        await state.WriteStateAsync();
    }

    /// <inheritdoc />
    public async Task StartAsync()
    {
        if (!state.RecordExists)
        {
            throw new InvalidOperationException($"run {this.GetPrimaryKey()} was never prepared");
        }

        if (Run.Committed)
        {
            return;
        }

        Run.Committed = true;
        Run.Status = RunStatus.Running;
        Run.StartedAt = time.GetUtcNow();
        Advance();
        await state.WriteStateAsync();
        LogRunStarted(logger, Run.RunId, Run.Plan.Pipeline.Name, Run.Plan.Pipeline.Revision);
        await AfterTransitionAsync();
    }

    /// <inheritdoc />
    public async Task<ApplyOutcome> ApplyResultAsync(DriverResultInput result)
    {
        ArgumentNullException.ThrowIfNull(result);
        if (!state.RecordExists)
        {
            DeactivateOnIdle();
            return ApplyOutcome.UnknownRun;
        }

        var (step, outcome) = FindStep(result);
        if (step is null)
        {
            return outcome;
        }

        var attempt = step.Current!;
        var now = time.GetUtcNow();
        attempt.FinishedAt = now;
        attempt.Success = result.Success;
        attempt.Message = result.Message;
        attempt.Data = result.Data;
        attempt.Published = true;
        attempt.PublishedAt ??= now;
        step.ResultJson = JsonSerializer.Serialize(
            new DriverResultEvent
            {
                Success = result.Success,
                Message = result.Message,
                Data = result.Data is null ? null : JsonSerializer.Deserialize<JsonElement>(result.Data),
                Driver = result.Driver,
            },
            ConveyorJson.Context.DriverResultEvent);
        step.CompletionOrder = ++Run.Completions;

        if (result.Success)
        {
            step.Status = StepStatus.Succeeded;
            step.Output = result.Data;
        }
        else
        {
            step.Status = StepStatus.Failed;
            var spec = Specs[step.Id];
            if (!spec.AllowFailure && Run.Plan.Pipeline.FailurePolicy == FailurePolicy.FailFast)
            {
                CancelRemaining($"step {step.Id} failed: {result.Message}");
            }
        }

        Advance();
        await state.WriteStateAsync();
        LogStepFinished(logger, Run.RunId, step.Id, attempt.Number, step.Status);
        await AfterTransitionAsync();
        return ApplyOutcome.Applied;
    }

    /// <inheritdoc />
    public Task<RunState?> GetAsync() => Task.FromResult(state.RecordExists ? Run : null);

    /// <inheritdoc />
    public Task<Dictionary<string, string>> GetDriverResultsAsync() =>
        Task.FromResult(state.RecordExists ? DriverResults() : []);

    /// <inheritdoc />
    public async Task ReceiveReminder(string reminderName, TickStatus status)
    {
        if (!state.RecordExists || Run.Status.IsTerminal())
        {
            await StopKeepAliveAsync();
            return;
        }

        if (!Run.Committed)
        {
            if (time.GetUtcNow() - Run.CreatedAt < CommitGrace)
            {
                return;
            }

            // The resource grain that prepared this run died before starting it: start if the resource committed
            // with this run, give up otherwise.
            var key = Names.ResourceKey(Run.Plan.Namespace, Run.Plan.Resource.Type, Run.Plan.Resource.Name);
            var (resource, lastRun) = await grains.GetGrain<IResourceGrain>(key).GetAsync();
            if (resource is not null && lastRun == Run.RunId)
            {
                await StartAsync();
            }
            else
            {
                Run.Status = RunStatus.Cancelled;
                Run.FinishedAt = time.GetUtcNow();
                Run.Message = "the resource that started this run was never stored";
                foreach (var step in Run.Steps)
                {
                    step.Status = StepStatus.Skipped;
                }

                await state.WriteStateAsync();
                await StopKeepAliveAsync();
            }

            return;
        }

        await PublishPendingAsync();
    }

    /// <summary>Finds the step a result is for, or says why there is none.</summary>
    private (StepState? Step, ApplyOutcome Outcome) FindStep(DriverResultInput result)
    {
        StepState? step;
        if (result.StepId is not null)
        {
            step = Run.Steps.Find(s => s.Id == result.StepId);
            if (step is null || !string.Equals(Specs[step.Id].Driver, result.Driver, StringComparison.Ordinal))
            {
                return (null, ApplyOutcome.UnknownStep);
            }

            var current = step.Current;
            if (current is null || (result.Attempt is { } a && a != current.Number))
            {
                return (null, ApplyOutcome.Stale);
            }

            if (current.Success is not null)
            {
                return (null, ApplyOutcome.Duplicate);
            }

            return step.Status.IsInFlight() && !Run.Status.IsTerminal() ? (step, ApplyOutcome.Applied) : (null, ApplyOutcome.Stale);
        }

        // An original driver says only who it is: the earliest dispatched in-flight step of that driver is the one.
        step = null;
        foreach (var candidate in Run.Steps)
        {
            if (candidate.Status.IsInFlight()
                && string.Equals(Specs[candidate.Id].Driver, result.Driver, StringComparison.Ordinal)
                && (step is null || candidate.Current!.DispatchedAt < step.Current!.DispatchedAt))
            {
                step = candidate;
            }
        }

        if (step is not null && !Run.Status.IsTerminal())
        {
            return (step, ApplyOutcome.Applied);
        }

        var known = Run.Steps.Exists(s => string.Equals(Specs[s.Id].Driver, result.Driver, StringComparison.Ordinal));
        return (null, known ? ApplyOutcome.Duplicate : ApplyOutcome.UnknownStep);
    }

    /// <summary>
    /// Moves the DAG forward: dispatches every pending step whose dependencies are satisfied, skips those that can
    /// never run, and ends the run when no step can change any more. Cost is linear in steps plus edges.
    /// </summary>
    private void Advance()
    {
        if (Run.Status.IsTerminal())
        {
            return;
        }

        var byId = Run.Steps.ToDictionary(s => s.Id, StringComparer.Ordinal);
        var now = time.GetUtcNow();

        // Steps are stored in declaration order, which need not be topological; repeat until nothing changes so a
        // skip propagates through any order. Each pass is O(steps + edges) and a pass only repeats after a change.
        bool changed;
        do
        {
            changed = false;
            foreach (var step in Run.Steps)
            {
                if (step.Status != StepStatus.Pending)
                {
                    continue;
                }

                var ready = true;
                var blocked = false;
                foreach (var dep in Specs[step.Id].DependsOn)
                {
                    var d = byId[dep];
                    if (d.Status == StepStatus.Succeeded || (d.Status.IsTerminal() && d.Status != StepStatus.Skipped && Specs[dep].AllowFailure))
                    {
                        continue;
                    }

                    ready = false;
                    if (d.Status.IsTerminal())
                    {
                        blocked = true;
                    }
                }

                if (blocked)
                {
                    step.Status = StepStatus.Skipped;
                    changed = true;
                }
                else if (ready)
                {
                    step.Status = StepStatus.Dispatched;
                    step.Attempts.Add(new AttemptState { Number = step.Attempts.Count + 1, DispatchedAt = now });
                    changed = true;
                }
            }
        }
        while (changed);

        if (Run.Steps.TrueForAll(s => s.Status.IsTerminal()))
        {
            Finish(now);
        }
    }

    private void Finish(DateTimeOffset now)
    {
        var failed = Run.Steps.Find(s => s.Status is StepStatus.Failed or StepStatus.TimedOut && !Specs[s.Id].AllowFailure)
            ?? Run.Steps.Find(s => s.Status is StepStatus.Skipped or StepStatus.Cancelled);
        Run.Status = failed is null ? RunStatus.Succeeded : RunStatus.Failed;
        Run.FinishedAt = now;
        if (failed is not null && string.IsNullOrEmpty(Run.Message))
        {
            Run.Message = $"step {failed.Id} {failed.Status.ToString().ToLowerInvariant()}: {failed.Current?.Message}";
        }
    }

    private void CancelRemaining(string reason)
    {
        Run.Message = reason;
        foreach (var step in Run.Steps)
        {
            if (step.Status == StepStatus.Pending)
            {
                step.Status = StepStatus.Skipped;
            }
            else if (step.Status.IsInFlight())
            {
                step.Status = StepStatus.Cancelled;
                step.Current!.Message = reason;
                step.Current.FinishedAt = time.GetUtcNow();
            }
        }
    }

    /// <summary>Side effects of a persisted transition: publish new dispatches; drop the reminder when the run ended.</summary>
    private async Task AfterTransitionAsync()
    {
        if (Run.Status.IsTerminal())
        {
            LogRunFinished(logger, Run.RunId, Run.Status);
            await StopKeepAliveAsync();
            return;
        }

        await PublishPendingAsync();
    }

    /// <summary>Publishes every in-flight attempt that JetStream has not confirmed yet (the outbox).</summary>
    private async Task PublishPendingAsync()
    {
        var waiting = false;
        foreach (var step in Run.Steps)
        {
            var attempt = step.Current;
            if (!step.Status.IsInFlight() || attempt is null || attempt.Published)
            {
                continue;
            }

            var spec = Specs[step.Id];
            var subject = Subjects.DriverResources(spec.Driver, Run.Plan.Resource.Type);
            try
            {
                var outcome = await dispatcher.DispatchAsync(
                    subject,
                    BuildMessage(step, spec, attempt),
                    MessageIds.DedupKey(Run.RunId.ToString(), step.Id, attempt.Number),
                    new NatsHeaders
                    {
                        [Headers.RunId] = Run.RunId.ToString(),
                        [Headers.StepId] = step.Id,
                        [Headers.Attempt] = attempt.Number.ToString(CultureInfo.InvariantCulture),
                    },
                    requireConsumer: true);
                if (outcome == DispatchOutcome.Published)
                {
                    // Confirmed in memory; persisted with the next transition. A crash before that re-publishes, and
                    // JetStream drops the copy by its Nats-Msg-Id.
                    attempt.Published = true;
                    attempt.PublishedAt = time.GetUtcNow();
                    LogDispatched(logger, Run.RunId, step.Id, attempt.Number, subject);
                }
                else
                {
                    waiting = true;
                    LogWaitingForDriver(logger, Run.RunId, step.Id, spec.Driver, subject);
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                waiting = true;
                LogDispatchFailed(logger, ex, Run.RunId, step.Id, subject);
            }
        }

        if (waiting)
        {
            ScheduleRedrive(dispatcher.Options.DriverWaitInterval);
        }
    }

    private DriverMessage BuildMessage(StepState step, StepSpec spec, AttemptState attempt)
    {
        var resource = ResourceGrain.ToWire(Run.Plan.Resource, DriverResults());
        return new DriverMessage
        {
            // Root steps get "create" like the original's first step; every later step gets "process".
            Event = spec.DependsOn.Count == 0 ? EventNames.Create : EventNames.Process,
            Payload = ConveyorJson.SerializeResource(resource),
            Id = MessageIds.ForDispatch(Run.RunId.ToString(), step.Id, attempt.Number),
            RunId = Run.RunId.ToString(),
        };
    }

    /// <summary>The original's <c>driverresults.&lt;driver&gt;</c> entries, later results overriding earlier ones.</summary>
    private Dictionary<string, string> DriverResults()
    {
        var results = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var step in Run.Steps.Where(s => s.ResultJson is not null).OrderBy(s => s.CompletionOrder))
        {
            results["driverresults." + Specs[step.Id].Driver] = step.ResultJson!;
        }

        return results;
    }

    private void ScheduleRedrive(TimeSpan dueTime)
    {
        if (_redriveTimer is null)
        {
            _redriveTimer = this.RegisterGrainTimer(
                static (grain, _) => grain.RedriveAsync(),
                this,
                new GrainTimerCreationOptions(dueTime, Timeout.InfiniteTimeSpan) { Interleave = false, KeepAlive = true });
        }
        else
        {
            _redriveTimer.Change(dueTime, Timeout.InfiniteTimeSpan);
        }
    }

    private Task RedriveAsync() =>
        state.RecordExists && Run.Committed && !Run.Status.IsTerminal() ? PublishPendingAsync() : Task.CompletedTask;

    private async Task StopKeepAliveAsync()
    {
        _redriveTimer?.Dispose();
        _redriveTimer = null;
        var reminder = await this.GetReminder(KeepAliveReminder);
        if (reminder is not null)
        {
            await this.UnregisterReminder(reminder);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId} of pipeline {Pipeline} (revision {Revision}) started")]
    private static partial void LogRunStarted(ILogger logger, Guid runId, string pipeline, int revision);

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId} finished: {Status}")]
    private static partial void LogRunFinished(ILogger logger, Guid runId, RunStatus status);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Run {RunId}: step {Step} attempt {Attempt} dispatched on {Subject}")]
    private static partial void LogDispatched(ILogger logger, Guid runId, string step, int attempt, string subject);

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId}: step {Step} attempt {Attempt} ended {Status}")]
    private static partial void LogStepFinished(ILogger logger, Guid runId, string step, int attempt, StepStatus status);

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId}: step {Step} waits for driver {Driver} (no consumer on {Subject})")]
    private static partial void LogWaitingForDriver(ILogger logger, Guid runId, string step, string driver, string subject);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Run {RunId}: dispatch of step {Step} on {Subject} failed; retrying")]
    private static partial void LogDispatchFailed(ILogger logger, Exception exception, Guid runId, string step, string subject);
}
