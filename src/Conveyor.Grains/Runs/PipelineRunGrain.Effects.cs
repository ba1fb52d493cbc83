using System.Diagnostics;
using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Flow;
using Conveyor.Grains.Nats;
using Conveyor.Grains.Runs.Engine;
using Conveyor.Grains.Telemetry;

namespace Conveyor.Grains.Runs;

/// <summary>
/// Carrying out decisions: every effect the machine can ask for, against NATS, Redis, the admission queues, reminders
/// and the timer. Nothing here decides anything about the run; what comes back (a confirmed dispatch, a slot) goes
/// into the machine as an input.
/// </summary>
internal sealed partial class PipelineRunGrain
{
    private IGrainTimer? _timer;
    private IGrainReminder? _reminder;

    // Trace context of the latest result handed in: the dispatches it causes continue from there. A grain turn does
    // not carry the caller's Activity, so it is taken from the call's request context.
    private ActivityContext _resultContext;

    /// <summary>
    /// Carries out effects in order. The index update and the events of a stored transition are independent of the
    /// rest (each is redone from state if lost), so they overlap with it instead of adding a Redis and a JetStream round
    /// trip before every dispatch; they are awaited before anything that may start another transition (asking for a
    /// slot), before the timer is armed, and at the end. Consecutive dispatches go out as one batch.
    /// </summary>
    private async Task ExecuteAsync(IReadOnlyList<RunEffect> effects)
    {
        Task? indexed = null;
        Task? published = null;
        var released = true;
        for (var i = 0; i < effects.Count; i++)
        {
            switch (effects[i])
            {
                case SyncIndex:
                    indexed = SyncIndexAsync();
                    break;
                case PublishEvents:
                    published = PublishEventsAsync();
                    break;
                case SendCancel cancel:
                    await SendCancelAsync(cancel.Message);
                    break;
                case DispatchStep:
                    var end = i;
                    while (end + 1 < effects.Count && effects[end + 1] is DispatchStep)
                    {
                        end++;
                    }

                    var settled = await DispatchBatchAsync(effects, i, end);
                    i = end;
                    await (indexed ?? Task.CompletedTask);
                    await (published ?? Task.CompletedTask);
                    (indexed, published) = (null, null);
                    // A dispatch that can never go out (too large) fails its step: a transition to store first.
                    await CommitAsync(settled);
                    await ExecuteAsync(settled.Effects);
                    break;
                case AcquireSlot acquire:
                    await (indexed ?? Task.CompletedTask);
                    await (published ?? Task.CompletedTask);
                    (indexed, published) = (null, null);
                    await AcquireAsync(acquire);
                    break;
                case ReleaseSlot release:
                    released = await ReleaseSlotAsync(release.Queue);
                    if (!released)
                    {
                        // The keepalive stays: its next tick releases the slot again.
                        DisposeTimer();
                    }

                    break;
                case StopKeepAlive when released:
                    await StopKeepAliveAsync();
                    break;
                case StopKeepAlive:
                    break;
                case CheckCommit check:
                    await CheckCommitAsync(check);
                    break;
                case RegisterKeepAlive:
                    await RegisterKeepAliveAsync();
                    break;
                case StartChild start:
                    await StartChildAsync(start);
                    break;
                case CheckChild check:
                    await CheckChildAsync(check.Child);
                    break;
                case CancelChild cancelChild:
                    await CancelChildAsync(cancelChild);
                    break;
                case NotifyParent notify:
                    NotifyParent(notify);
                    break;
                case ArmTimer arm:
                    await (indexed ?? Task.CompletedTask);
                    await (published ?? Task.CompletedTask);
                    (indexed, published) = (null, null);
                    ArmTimer(arm.At);
                    break;
                default:
                    throw new InvalidOperationException($"unknown run effect {effects[i]}");
            }
        }

        await (indexed ?? Task.CompletedTask);
        await (published ?? Task.CompletedTask);
    }

    /// <summary>
    /// Publishes the attempts of one batch (the outbox: every attempt JetStream has not confirmed yet). They go out
    /// together — a layer of a wide DAG costs about one round trip, not one per step — each message built here with
    /// its step token, over one resource snapshot. What JetStream confirmed goes back into the machine.
    /// </summary>
    private async Task<RunDecision> DispatchBatchAsync(IReadOnlyList<RunEffect> effects, int first, int last)
    {
        var run = Run;
        var caller = Activity.Current;
        var parent = DispatchParent();
        var payload = DispatchMessages.Payload(run.Plan, Machine.DriverResults());
        var pending = new (StepDispatch Dispatch, Task<DispatchResult> Publish, Activity? Span)[last - first + 1];
        for (var i = first; i <= last; i++)
        {
            var step = (DispatchStep)effects[i];
            var message = DispatchMessages.Build(
                Machine.Graph, Machine.Step(step.Step), step.Attempt, payload, services.Secrets.MintStepToken(run.RunId, step.Step, step.Attempt, Machine.Graph.Spec(Machine.Step(step.Step)).Timeout));
            var span = ConveyorTelemetry.Source.StartActivity(ConveyorTelemetry.DispatchActivity, ActivityKind.Producer, parent);
            var dispatch = new StepDispatch(run.RunId, step.Step, step.Attempt, step.Driver, run.Plan.Resource.Type, message)
            {
                TraceParent = span?.Id ?? run.TraceParent,
            };
            if (span is not null)
            {
                span.SetTag("conveyor.run.id", run.RunId.ToString());
                span.SetTag("conveyor.step", step.Step);
                span.SetTag("conveyor.attempt", step.Attempt);
                span.SetTag("conveyor.driver", step.Driver);
                span.SetTag("messaging.system", "nats");
                span.SetTag("messaging.destination.name", dispatch.Subject);
                // The dispatches of one transition are siblings, not nested.
                Activity.Current = caller;
            }

            pending[i - first] = (dispatch, services.Dispatcher.DispatchStepAsync(dispatch), span);
        }

        var reports = new DispatchReport[pending.Length];
        for (var i = 0; i < pending.Length; i++)
        {
            var (dispatch, publish, span) = pending[i];
            using var _ = span;
            ulong? sequence = null;
            string? error = null;
            try
            {
                var result = await publish;
                if (result.Outcome == DispatchOutcome.Published)
                {
                    sequence = result.Sequence;
                    LogDispatched(logger, run.RunId, dispatch.Step, dispatch.Attempt, dispatch.Subject);
                }
                else if (result.Outcome == DispatchOutcome.TooLarge)
                {
                    error = result.Error;
                    span?.SetStatus(ActivityStatusCode.Error, error);
                    LogDispatchTooLarge(logger, run.RunId, dispatch.Step, dispatch.Attempt, error ?? "");
                }
                else
                {
                    span?.SetTag("conveyor.waiting_for_driver", true);
                    LogWaitingForDriver(logger, run.RunId, dispatch.Step, dispatch.Driver, dispatch.Subject);
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                span?.SetStatus(ActivityStatusCode.Error, ex.Message);
                LogDispatchFailed(logger, ex, run.RunId, dispatch.Step, dispatch.Subject);
            }

            var at = services.Time.GetUtcNow();
            reports[i] = new DispatchReport(dispatch.Step, dispatch.Attempt, sequence, at, error);
            if (sequence is not null && Machine.Step(dispatch.Step).Current is { } attempt)
            {
                services.Metrics.Dispatched(dispatch.Driver, at - attempt.DispatchedAt);
            }
        }

        // Confirmed in memory; stored with the next transition. A crash before that re-publishes, and JetStream drops
        // the copy by its Nats-Msg-Id (and reports the original's sequence).
        return Machine.Apply(new DispatchesSettled(reports), services.Time.GetUtcNow());
    }

    private async Task SendCancelAsync(CancelMessage cancel)
    {
        try
        {
            await services.Dispatcher.SendCancelAsync(cancel);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Best effort: the engine ignores the attempt's result whatever the driver does.
            LogCancelFailed(logger, ex, Run.RunId, cancel.Step);
        }
    }

    /// <summary>Files the run under its current status in the listing index, once per status change.</summary>
    private async Task SyncIndexAsync()
    {
        var status = Run.Status;
        if (!services.Index.IsAvailable || Run.IndexedStatus == status)
        {
            return;
        }

        try
        {
            var summary = Machine.Summary();
            var was = Run.IndexedStatus;
            await services.Index.SetStatusAsync(summary);
            await SyncRetentionAsync(summary, was);
            Machine.Apply(new IndexSynced(status), services.Time.GetUtcNow());
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Repaired on the next activation or keepalive: the indexed status still differs from the status.
            LogIndexFailed(logger, ex, Run.RunId);
        }
    }

    /// <summary>
    /// Publishes the outbox. Failure leaves it in place (in memory and in storage): the next transition, timer tick or
    /// activation publishes it again under the same ids, which JetStream de-duplicates.
    /// </summary>
    private async Task PublishEventsAsync()
    {
        if (Run.Outbox.Count == 0 && Run.EventOutbox.Count == 0)
        {
            return;
        }

        var batch = Run.Outbox.ToArray();
        var transitions = Run.EventOutbox.ToArray();
        var published = 0;
        try
        {
            // The feed's transitions and the CDEvents go out together; each outbox is cleared only as far as it went out.
            var feed = services.Feed.PublishAsync(Run, transitions);
            try
            {
                await services.Events.PublishAsync(batch);
                published = batch.Length;
            }
            finally
            {
                await feed;
            }

            // Cleared in memory; the next write stores the cleared outbox. A crash before that re-publishes duplicates.
            Machine.Apply(new EventsPublished(published, transitions.Length), services.Time.GetUtcNow());
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            if (published > 0)
            {
                Machine.Apply(new EventsPublished(published, 0), services.Time.GetUtcNow());
            }

            LogEventsFailed(logger, ex, Run.RunId, batch.Length + transitions.Length);
        }
    }

    /// <summary>Asks the run's queue for a slot (idempotent); acts on the answer.</summary>
    private async Task AcquireAsync(AcquireSlot acquire)
    {
        AdmissionTicket ticket;
        try
        {
            ticket = await grains.GetGrain<IAdmissionGrain>(acquire.Queue).AcquireAsync(acquire.Request);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Stored as Queued: the keepalive asks again.
            LogAdmissionFailed(logger, ex, Run.RunId, acquire.Queue);
            return;
        }

        if (ticket.Admitted)
        {
            await DecideAsync(SlotGranted.Instance);
        }
        else if (ticket.Superseded)
        {
            await DecideAsync(new Superseded(ticket.SupersededBy ?? Guid.Empty));
        }
        else
        {
            LogQueued(logger, Run.RunId, acquire.Queue, ticket.Position);
        }
    }

    /// <summary>Gives the run's slot back to its queue; false when the queue could not be reached (the keepalive retries).</summary>
    private async Task<bool> ReleaseSlotAsync(string queue)
    {
        try
        {
            await grains.GetGrain<IAdmissionGrain>(queue).ReleaseAsync(Run.RunId);
            return true;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LogReleaseFailed(logger, ex, Run.RunId, queue);
            return false;
        }
    }

    /// <summary>The resource grain that prepared this run died before starting it: ask it whether it committed.</summary>
    private async Task CheckCommitAsync(CheckCommit check)
    {
        var (resource, lastRun) = await grains.GetGrain<IResourceGrain>(check.ResourceKey).GetAsync();
        using var activity = resource is not null && lastRun == Run.RunId ? StartRunActivity("start") : null;
        await DecideAsync(new CommitChecked(resource is not null, lastRun, TraceOf(activity)));
    }

    /// <summary>Arms the single timer for <paramref name="at"/>, or stops it when nothing is due.</summary>
    private void ArmTimer(DateTimeOffset? at)
    {
        if (at is not { } next)
        {
            _timer?.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            return;
        }

        var now = services.Time.GetUtcNow();
        ArmTimer(next <= now ? TimeSpan.Zero : next - now);
    }

    private void ArmTimer(TimeSpan due)
    {
        if (_timer is null)
        {
            _timer = this.RegisterGrainTimer(
                static (grain, _) => grain.WakeAsync(),
                this,
                new GrainTimerCreationOptions(due, Timeout.InfiniteTimeSpan) { Interleave = false, KeepAlive = true });
        }
        else
        {
            _timer.Change(due, Timeout.InfiniteTimeSpan);
        }
    }

    private void DisposeTimer()
    {
        _timer?.Dispose();
        _timer = null;
    }

    /// <summary>
    /// Registers the durable keepalive. The run cannot settle while it may be there, so that is noted first: a
    /// registration that failed may still have been stored.
    /// </summary>
    private async Task RegisterKeepAliveAsync()
    {
        _keepAliveStopped = false;
        _reminder = await this.RegisterOrUpdateReminder(KeepAliveReminder, services.KeepAlivePeriod, services.KeepAlivePeriod);
    }

    private async Task StopKeepAliveAsync()
    {
        DisposeTimer();
        // The handle from this activation's registration saves looking it up (a reminder-table read per run); if it
        // went stale (updated elsewhere since), the current one is looked up after all.
        if (_reminder is { } known)
        {
            _reminder = null;
            try
            {
                await this.UnregisterReminder(known);
                _keepAliveStopped = true;
                return;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                var runId = this.GetPrimaryKey();
                LogReminderStale(logger, ex, runId);
            }
        }

        var reminder = await this.GetReminder(KeepAliveReminder);
        if (reminder is not null)
        {
            await this.UnregisterReminder(reminder);
        }

        _keepAliveStopped = true;
    }

    /// <summary>Records the metrics of a stored transition, and the run's gauges.</summary>
    private void Record(IReadOnlyList<RunReport> reports)
    {
        var metrics = services.Metrics;
        foreach (var report in reports)
        {
            switch (report)
            {
                case RunStartedReport started:
                    metrics.RunStarted(started.Namespace, started.Pipeline);
                    break;
                case StepFinishedReport step:
                    metrics.StepFinished(step.Driver, step.Status, step.Duration);
                    break;
                case RunFinishedReport finished:
                    metrics.RunFinished(finished.Namespace, finished.Pipeline, finished.Status);
                    break;
                case ApprovalReport approval:
                    metrics.ApprovalDecided(approval.Namespace, approval.Pipeline, approval.Decision, approval.Waited);
                    break;
            }
        }

        if (Run.Status.IsTerminal())
        {
            metrics.Forget(Run.RunId);
        }
        else
        {
            metrics.Report(Run.RunId, Machine.InFlightCount, queued: Run.Status is RunStatus.Pending or RunStatus.Queued);
        }
    }

    private void NoteResultContext()
    {
        var context = ConveyorTelemetry.CallerContext();
        if (context != default)
        {
            _resultContext = context;
        }
    }

    /// <summary>Where a dispatch's span hangs: under the current span when it belongs to the run's trace, else under the run's stored start.</summary>
    private ActivityContext DispatchParent()
    {
        var stored = ConveyorTelemetry.Parse(Run.TraceParent);
        if (Activity.Current is { } current && (stored == default || current.TraceId == stored.TraceId))
        {
            return current.Context;
        }

        return _resultContext != default && (stored == default || _resultContext.TraceId == stored.TraceId) ? _resultContext : stored;
    }
}
