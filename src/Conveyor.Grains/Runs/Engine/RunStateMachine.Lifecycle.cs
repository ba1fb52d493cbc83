using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;

namespace Conveyor.Grains.Runs.Engine;

/// <summary>The run's life as a whole: start, admission, cancel, supersession, retry from failure, keepalive.</summary>
internal sealed partial class RunStateMachine
{
    /// <summary>The trigger committed: the run starts, or queues first when a limit applies.</summary>
    private void OnStart(string? traceParent, DateTimeOffset now)
    {
        if (Run.Committed)
        {
            return;
        }

        Run.TraceParent = traceParent ?? Run.TraceParent;
        Run.Committed = true;
        QueueOrBegin(now);
    }

    /// <summary>
    /// Starts a committed run (first start or retry): at once when no limit applies, otherwise it is stored
    /// <see cref="RunStatus.Queued"/> first and then asks its queue for a slot, so a crash in between leaves a queued
    /// run whose keepalive asks again.
    /// </summary>
    private void QueueOrBegin(DateTimeOffset now)
    {
        var request = AdmissionRule.For(Run, _options.Flow, out var queue);
        if (request is null)
        {
            Run.AdmissionKey = null;
            Begin(now);
            return;
        }

        SetRunStatus(RunStatus.Queued);
        Run.AdmissionKey = queue;
        Run.DeadlineAt = null;
        _persist = true;
        _follow = Follow.Index | Follow.Events;
        Then(new AcquireSlot(queue, request));
    }

    /// <summary>The run holds its slot (or needs none): steps start, the run's timeout starts counting.</summary>
    private void Begin(DateTimeOffset now)
    {
        SetRunStatus(RunStatus.Running);
        Run.StartedAt ??= now;
        Run.DeadlineAt = now + Run.Plan.Pipeline.Timeout;
        Advance(now);
        _persist = true;
        _follow = Follow.Transition;
        Note(new RunStartedNote(Run.Plan.Pipeline.Name, Run.Plan.Pipeline.Revision));
    }

    /// <summary>A queued run starts; a run that ended meanwhile (cancelled while the admission was on its way) gives the slot back.</summary>
    private void OnSlotGranted(DateTimeOffset now)
    {
        if (Run.Status == RunStatus.Queued && Run.Committed)
        {
            Begin(now);
        }
        else if (Run.Status.IsTerminal() && Run.AdmissionKey is { } queue)
        {
            Then(new ReleaseSlot(queue));
        }
    }

    private void OnSuperseded(Guid by, DateTimeOffset now)
    {
        if (!Run.Status.IsTerminal())
        {
            End(RunStatus.Cancelled, AdmissionRule.SupersededReason(Run.Plan, by), now);
        }
    }

    private string? OnCancel(string reason, DateTimeOffset now)
    {
        if (Run.Status.IsTerminal())
        {
            return $"run {Run.RunId} already ended {Run.Status}; only a Pending, Queued or Running run can be cancelled";
        }

        End(RunStatus.Cancelled, string.IsNullOrWhiteSpace(reason) ? "cancelled" : reason, now);
        return null;
    }

    /// <summary>Ends the run from outside its steps and acts on it like any transition.</summary>
    private void End(RunStatus status, string reason, DateTimeOffset now)
    {
        EndRun(status, reason, now);
        _persist = true;
        _follow = Follow.Transition;
    }

    /// <summary>
    /// A new attempt of every step that did not succeed, with a fresh retry budget; the succeeded keep their outputs.
    /// The keepalive is registered before the restarted run is stored.
    /// </summary>
    private string? OnRetry(string? traceParent, DateTimeOffset now)
    {
        if (Run.Status is not (RunStatus.Failed or RunStatus.Cancelled or RunStatus.TimedOut))
        {
            return $"run {Run.RunId} is {Run.Status}; only a Failed, Cancelled or TimedOut run can be retried";
        }

        foreach (var step in Run.Steps)
        {
            if (step.Status != StepStatus.Succeeded)
            {
                Restart(step);
                // A matrix step keeps its instances: those that succeeded keep their outputs, the others run again.
                foreach (var instance in step.Instances ?? [])
                {
                    if (instance.Status != StepStatus.Succeeded)
                    {
                        Restart(instance);
                    }
                }
            }
        }

        // Steps went back to Pending: readiness is recomputed by a full pass, keeping what must be written.
        var retried = _dirty.ToList();
        Rebuild();
        _dirty.UnionWith(retried);

        Run.Committed = true;
        Run.FinishedAt = null;
        Run.Message = "";
        Run.RunAttempt++;
        Run.TraceParent = traceParent ?? Run.TraceParent;
        (_before ??= []).Add(RegisterKeepAlive.Instance);
        Note(new RunRetriedNote(Run.RunAttempt));
        QueueOrBegin(now);
        return null;
    }

    /// <summary>A step of a retried run waits again, with a fresh retry budget.</summary>
    private void Restart(StepState step)
    {
        SetStatus(step, StepStatus.Pending);
        step.NextAttemptAt = null;
        step.DeadlineAt = null;
        step.BudgetStart = step.Attempts.Count;
        step.Reason = null;
    }

    /// <summary>
    /// The durable keepalive: an ended run finishes its upkeep (index, slot) and drops the keepalive; a prepared run
    /// whose trigger never committed asks its resource; a queued run asks its queue again (covering a lost admission
    /// and a crash between storing Queued and asking); a running one is ticked.
    /// </summary>
    private void OnKeepAlive(DateTimeOffset now)
    {
        if (Run.Status.IsTerminal())
        {
            _follow = Follow.Index;
            if (Run.AdmissionKey is { } queue)
            {
                Then(new ReleaseSlot(queue));
            }

            Then(StopKeepAlive.Instance);
            return;
        }

        if (!Run.Committed)
        {
            if (now - Run.CreatedAt >= _options.CommitGrace)
            {
                Then(new CheckCommit(Names.ResourceKey(Run.Plan.Namespace, Run.Plan.Resource.Type, Run.Plan.Resource.Name)));
            }

            return;
        }

        if (Run.Status == RunStatus.Queued)
        {
            Then(new AcquireSlot(Run.AdmissionKey!, AdmissionRule.For(Run, _options.Flow, out _)!));
            return;
        }

        OnTick(now);
        // A child run tells its parent when it ends, one-way; asking each child covers a lost call (or a child never started).
        foreach (var step in Run.Steps)
        {
            if (step.Status == StepStatus.Running && StartChildOf(step) is { } child)
            {
                Then(new CheckChild(child));
            }
        }
    }

    /// <summary>The resource answered: it names this run, so the run starts; otherwise it was never stored and the run gives up.</summary>
    private void OnCommitChecked(CommitChecked check, DateTimeOffset now)
    {
        if (Run.Committed)
        {
            return;
        }

        if (check.ResourceStored && check.LastRunId == Run.RunId)
        {
            OnStart(check.TraceParent, now);
            return;
        }

        End(RunStatus.Cancelled, "the resource that started this run was never stored", now);
    }
}
