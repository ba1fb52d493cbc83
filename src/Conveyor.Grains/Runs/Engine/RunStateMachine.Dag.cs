using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;

namespace Conveyor.Grains.Runs.Engine;

/// <summary>The DAG's rules: results, readiness, dispatch, retry and backoff, failure policies, skips, timeouts.</summary>
internal sealed partial class RunStateMachine
{
    /// <summary>Applies results; when any changed the run, the DAG moves forward and the batch is stored by one write.</summary>
    private ApplyOutcome[] OnResults(IReadOnlyList<DriverResultInput> results, DateTimeOffset now)
    {
        var outcomes = new ApplyOutcome[results.Count];
        var applied = false;
        for (var i = 0; i < results.Count; i++)
        {
            outcomes[i] = ApplyResult(results[i], now);
            applied |= outcomes[i] == ApplyOutcome.Applied;
        }

        if (applied)
        {
            Advance(now);
            _persist = true;
            _follow = Follow.Transition;
        }

        return outcomes;
    }

    /// <summary>Applies one result to the attempt it answers, at most once per (step, attempt).</summary>
    private ApplyOutcome ApplyResult(DriverResultInput result, DateTimeOffset now)
    {
        var (step, outcome) = ResultMatcher.Match(result, _graph, _inFlight);
        if (step is null)
        {
            return outcome;
        }

        var attempt = step.Current!;
        Touch(step);
        // A result proves the dispatch arrived, whatever its confirmation said.
        attempt.Published = true;
        attempt.PublishedAt ??= now;
        _unpublished.Remove(step);
        step.CompletionOrder = ++Run.Completions;
        var (success, message, data) = LimitResultData(result);
        attempt.Data = data;
        var driver = _graph.Spec(step).Driver;
        _latestResults[driver] = (step.CompletionOrder, DispatchMessages.ResultJson(success, message, data, driver));

        if (success)
        {
            attempt.FinishedAt = now;
            attempt.Success = true;
            attempt.Message = message;
            step.DeadlineAt = null;
            SetStatus(step, StepStatus.Succeeded);
        }
        else
        {
            FailAttempt(step, message, timedOut: false, now);
        }

        Note(new StepFinishedNote(step.Id, attempt.Number, step.Status));
        return ApplyOutcome.Applied;
    }

    /// <summary>Applies every due time: the run's deadline, attempt deadlines and retries; then moves the DAG on.</summary>
    private void OnTick(DateTimeOffset now)
    {
        if (!Active)
        {
            // Only what an ended (or not yet started) run may still owe: its index entry and its events.
            _follow = Follow.Index | Follow.Events;
            return;
        }

        var changed = false;
        if (Run.DeadlineAt is { } runDeadline && runDeadline <= now)
        {
            EndRun(RunStatus.TimedOut, $"run timed out after {Run.Plan.Pipeline.Timeout}", now);
            changed = true;
        }
        else
        {
            // Due entries that no longer match the step (it moved on) are dropped on the way.
            while (_due.TryPeek(out var step, out var due) && due <= now)
            {
                _due.Dequeue();
                if (step.Status is StepStatus.Dispatched or StepStatus.Running or StepStatus.WaitingForApproval && step.DeadlineAt == due)
                {
                    OnDeadline(step, now);
                    changed = true;
                }
                else if (step.Status == StepStatus.Retrying && step.NextAttemptAt == due && Run.Status == RunStatus.Running)
                {
                    // Paused: the retry waits; the resume files it again and dispatches it.
                    Dispatch(step, now);
                    changed = true;
                }
            }

            if (changed || _needsFullPass)
            {
                changed |= Advance(now);
            }
        }

        _persist |= changed;
        _follow = Follow.Transition;
    }

    /// <summary>
    /// Ends the current attempt as failed; schedules a retry while the step's budget lasts (unless the failure is
    /// <paramref name="final"/>: another attempt would fail the same way), else applies the failure policy.
    /// </summary>
    private void FailAttempt(StepState step, string message, bool timedOut, DateTimeOffset now, bool final = false)
    {
        var attempt = step.Current!;
        var spec = _graph.Spec(step);
        Touch(step);
        attempt.FinishedAt = now;
        attempt.Success = false;
        attempt.Message = message;
        attempt.TimedOut = timedOut;
        step.DeadlineAt = null;
        if (timedOut)
        {
            // The driver may still be working on it: tell it to stop.
            QueueCancel(step, attempt, message);
        }

        var policy = spec.Kind == StepKind.Driver ? spec.Retry ?? Run.Plan.Pipeline.Retry : null;
        var used = step.Attempts.Count - step.BudgetStart;
        if (!final && policy is not null && used < policy.MaxAttempts)
        {
            var next = now + Backoff.Delay(policy, used, _options.Jitter());
            step.NextAttemptAt = next;
            SetStatus(step, StepStatus.Retrying);
            _due.Enqueue(step, next);
            Note(new RetryScheduledNote(step.Id, attempt.Number, next));
            return;
        }

        SetStatus(step, timedOut ? StepStatus.TimedOut : StepStatus.Failed);
        FailFastAfter(step, $"step {step.Id} {(timedOut ? "timed out" : "failed")}: {message}", now);
    }

    /// <summary>Fail-fast: a main step that may not fail failed, so nothing new of the main steps starts (finally steps still run).</summary>
    private void FailFastAfter(StepState step, string reason, DateTimeOffset now)
    {
        var spec = _graph.Spec(step);
        if (!spec.AllowFailure && !spec.Finally && Run.Plan.Pipeline.FailurePolicy == FailurePolicy.FailFast)
        {
            CancelRemaining(reason, now);
        }
    }

    /// <summary>
    /// Moves the DAG forward after a transition: every step that settled releases or skips its dependents, a dependent
    /// whose last unmet dependency succeeded is dispatched, and the run finishes when no step can change any more.
    /// O(dependents of what settled); the first call after a load or a restart of steps makes one full pass instead.
    /// Returns whether anything changed.
    /// </summary>
    private bool Advance(DateTimeOffset now)
    {
        if (Run.Status != RunStatus.Running)
        {
            _settled.Clear();
            if (Run.Status == RunStatus.Paused)
            {
                // Nothing starts while paused; the resume's full pass moves on from whatever settled meanwhile. A
                // paused run whose every step has ended (its last in-flight steps finished) has nothing left to hold.
                _needsFullPass = true;
                if (_unsettled == 0)
                {
                    Finish(now);
                    return true;
                }
            }

            return false;
        }

        var changed = false;
        if (_needsFullPass)
        {
            changed = FullPass(now);
        }

        while (true)
        {
            while (_settled.TryDequeue(out var settled))
            {
                if (_graph.ParentOf(settled) is { } parent)
                {
                    changed |= OnInstanceSettled(parent, now);
                    continue;
                }

                var dependents = _graph.DependentsOf(settled);
                if (dependents.Count == 0)
                {
                    continue;
                }

                var satisfied = Satisfies(settled);
                foreach (var dependent in dependents)
                {
                    if (dependent.Status != StepStatus.Pending)
                    {
                        continue;
                    }

                    changed = true;
                    if (!satisfied)
                    {
                        // Skipping settles it in turn, so the skip reaches the whole subgraph within this loop.
                        Skip(dependent, SkipReason.Dependency, $"dependency {settled.Id} {Describe(settled)}");
                    }
                    else
                    {
                        Release(dependent, now);
                    }
                }
            }

            // Once every main step has ended, the finally steps start (each still waits for its own dependencies).
            if (_mainUnsettled == 0 && _graph.HasFinally && ReleaseFinally(now))
            {
                changed = true;
                continue;
            }

            break;
        }

        if (_unsettled == 0)
        {
            Finish(now);
            changed = true;
        }

        return changed;
    }

    /// <summary>Starts the finally roots still waiting; returns whether any started.</summary>
    private bool ReleaseFinally(DateTimeOffset now)
    {
        var released = false;
        foreach (var root in _graph.FinallyRoots)
        {
            if (root.Status == StepStatus.Pending && Run.Status == RunStatus.Running)
            {
                _unmet.Remove(root);
                Ready(root, now);
                released = true;
            }
        }

        return released;
    }

    /// <summary>How a settled step is described to those it blocks.</summary>
    private static string Describe(StepState step) => step.Status switch
    {
        StepStatus.Skipped => "was skipped",
        StepStatus.TimedOut => "timed out",
        StepStatus.Cancelled => "was cancelled",
        _ => "failed",
    };

    /// <summary>One more dependency of a pending step succeeded: dispatches it when that was the last one.</summary>
    private void Release(StepState step, DateTimeOffset now)
    {
        if (_unmet.TryGetValue(step, out var unmet))
        {
            unmet--;
        }
        else
        {
            // Not counted (cannot happen after a full pass): count what is still unmet now rather than guess.
            unmet = _graph.Spec(step).DependsOn.Count(dep => _graph.Step(dep) is var d && !(d.Status.IsTerminal() && Satisfies(d)));
        }

        if (unmet > 0)
        {
            _unmet[step] = unmet;
            return;
        }

        _unmet.Remove(step);
        Ready(step, now);
    }

    /// <summary>Whether a settled step lets its dependents run: it succeeded, failed with allowFailure, or its condition skipped it.</summary>
    private bool Satisfies(StepState step) =>
        step.Status == StepStatus.Succeeded
        || (step.Status is StepStatus.Failed or StepStatus.TimedOut && _graph.Spec(step).AllowFailure)
        || (step.Status == StepStatus.Skipped && step.SkipReason == SkipReason.Condition);

    /// <summary>
    /// Looks at every pending step in topological order (a dependency is settled before its dependents are looked
    /// at, so a skip propagates in the same pass): dispatches the ready, skips the blocked, and counts what the rest
    /// still wait for. O(steps + edges); run when the incremental counts are not known yet.
    /// </summary>
    private bool FullPass(DateTimeOffset now)
    {
        _needsFullPass = false;
        _settled.Clear();
        _unmet.Clear();
        var changed = false;
        foreach (var step in _graph.TopologicalOrder())
        {
            if (step.Status == StepStatus.Running && step.Instances is not null)
            {
                // A matrix step whose instances were held (a pause) or are still to finish settling.
                changed |= OnInstanceSettled(step, now);
                continue;
            }

            if (step.Status != StepStatus.Pending)
            {
                continue;
            }

            var spec = _graph.Spec(step);
            var unmet = 0;
            string? blocker = null;
            foreach (var dep in spec.DependsOn)
            {
                var d = _graph.Step(dep);
                if (d.Status.IsTerminal() && Satisfies(d))
                {
                    continue;
                }

                unmet++;
                blocker ??= d.Status.IsTerminal() ? d.Id : null;
            }

            if (blocker is not null)
            {
                Skip(step, SkipReason.Dependency, $"dependency {blocker} {Describe(_graph.Step(blocker))}");
                changed = true;
            }
            else if (spec.Finally && spec.DependsOn.Count == 0 && _mainUnsettled > 0)
            {
                // A finally root waits for the main steps (released by Advance once they have all ended).
                _unmet[step] = 1;
            }
            else if (unmet == 0)
            {
                Ready(step, now);
                changed = true;
            }
            else
            {
                _unmet[step] = unmet;
            }
        }

        // What settled during the pass was already accounted for by the pass itself.
        _settled.Clear();
        return changed;
    }

    /// <summary>Every step settled: the run succeeded unless a step that may not fail failed, or a step was skipped or cancelled.</summary>
    /// <remarks>
    /// The main steps decide first: a main failure fails the run whatever its finally steps do; when the main steps
    /// succeeded, a finally step that may not fail and failed fails the run. A step skipped by its condition is done.
    /// </remarks>
    private void Finish(DateTimeOffset now)
    {
        var failed = FailureAmong(finallySteps: false) ?? FailureAmong(finallySteps: true);
        SetRunStatus(failed is null ? RunStatus.Succeeded : RunStatus.Failed);
        Run.FinishedAt = now;
        Run.DeadlineAt = null;
        if (failed is not null && string.IsNullOrEmpty(Run.Message))
        {
            Run.Message = $"{(_graph.Spec(failed).Finally ? "finally step" : "step")} {failed.Id} {failed.Status.ToString().ToLowerInvariant()}: {MessageOf(failed)}";
        }
    }

    /// <summary>The first step of the group that makes the run fail, or null.</summary>
    private StepState? FailureAmong(bool finallySteps)
    {
        StepState? skipped = null;
        foreach (var step in Run.Steps)
        {
            var spec = _graph.Spec(step);
            if (spec.Finally != finallySteps)
            {
                continue;
            }

            if (step.Status is StepStatus.Failed or StepStatus.TimedOut && !spec.AllowFailure)
            {
                return step;
            }

            if (step.Status is StepStatus.Cancelled || (step.Status == StepStatus.Skipped && step.SkipReason != SkipReason.Condition))
            {
                skipped ??= step;
            }
        }

        return skipped;
    }

    /// <summary>What the engine or the driver last said about a step.</summary>
    private static string MessageOf(StepState step) => step.Current?.Message is { Length: > 0 } message ? message : step.Reason ?? "";

    /// <summary>Fail-fast: nothing new starts, in-flight steps are cancelled; the run then finishes Failed.</summary>
    private void CancelRemaining(string reason, DateTimeOffset now)
    {
        Run.Message = reason;
        foreach (var step in Run.Steps)
        {
            if (!_graph.Spec(step).Finally)
            {
                StopStep(step, reason, now);
            }
        }
    }

    /// <summary>Ends the run now (cancel, run timeout, supersession): every unfinished step is cancelled or skipped.</summary>
    private void EndRun(RunStatus status, string reason, DateTimeOffset now)
    {
        foreach (var step in Run.Steps)
        {
            StopStep(step, reason, now);
        }

        SetRunStatus(status);
        Run.Message = reason;
        Run.FinishedAt = now;
        Run.DeadlineAt = null;
        Note(new RunEndedNote(status, reason));
    }

    /// <summary>Stops an unfinished step: what has not started is skipped, what is in flight is cancelled (its driver or child run told).</summary>
    private void StopStep(StepState step, string reason, DateTimeOffset now)
    {
        if (step.Status is StepStatus.Pending or StepStatus.Retrying)
        {
            Skip(step, SkipReason.RunEnded, reason);
        }
        else if (step.Instances is { } instances && step.Status == StepStatus.Running)
        {
            foreach (var instance in instances)
            {
                StopStep(instance, reason, now);
            }

            SettleMatrix(step);
        }
        else if (step.Status.IsInFlight() || step.Status == StepStatus.WaitingForApproval)
        {
            SetStatus(step, StepStatus.Cancelled);
            step.DeadlineAt = null;
            var attempt = step.Current!;
            attempt.Message = reason;
            attempt.FinishedAt = now;
            if (_graph.Spec(step).Kind == StepKind.Pipeline && step.ChildRunId is { } child)
            {
                _childCancels.Add(new CancelChild(child, $"parent run {Run.RunId} stopped: {reason}"));
            }
            else if (AtDriver(step))
            {
                QueueCancel(step, attempt, reason);
            }
        }
    }

    private void QueueCancel(StepState step, AttemptState attempt, string reason) =>
        _cancels.Add(new CancelMessage
        {
            RunId = Run.RunId.ToString(),
            Step = step.Id,
            Attempt = attempt.Number,
            Driver = _graph.Spec(step).Driver,
            Reason = reason,
        });
}
