using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;

namespace Conveyor.Grains.Runs.Engine;

/// <summary>The DAG's rules: results, readiness, dispatch, retry and backoff, failure policies, skips, timeouts.</summary>
internal sealed partial class RunStateMachine
{
    /// <summary>
    /// Derives every lookup from the state: unmet dependencies, in-flight and unpublished steps, due times, the latest
    /// result per driver, the steps with unreported attempts. O(steps + edges), once per load (or restart of steps).
    /// </summary>
    private void Rebuild()
    {
        _dirty.Clear();
        _inFlight.Clear();
        _unpublished.Clear();
        _settled.Clear();
        _due.Clear();
        _unmet.Clear();
        _latestResults.Clear();
        _unsettled = 0;
        Dictionary<string, StepState>? latest = null;
        foreach (var step in Run.Steps)
        {
            Track(step);
            if (step.CompletionOrder > 0)
            {
                var driver = _graph.Spec(step).Driver;
                if ((latest ??= new(StringComparer.Ordinal)).GetValueOrDefault(driver) is not { } known || known.CompletionOrder < step.CompletionOrder)
                {
                    latest[driver] = step;
                }
            }

            if (step.Attempts.Exists(a => !a.StartReported || (a.FinishedAt is not null && !a.FinishReported)))
            {
                _dirty.Add(step);
            }
        }

        foreach (var (driver, step) in latest ?? [])
        {
            if (LastResultJson(step, driver) is { } json)
            {
                _latestResults[driver] = (step.CompletionOrder, json);
            }
        }

        // Readiness is settled by one full pass before the first incremental transition (see Advance).
        _needsFullPass = true;
    }

    /// <summary>The JSON of the last result a driver gave for the step (an attempt that ended by the engine has none).</summary>
    private static string? LastResultJson(StepState step, string driver)
    {
        for (var i = step.Attempts.Count - 1; i >= 0; i--)
        {
            var attempt = step.Attempts[i];
            if (attempt.Success is { } success && !attempt.TimedOut)
            {
                return DispatchMessages.ResultJson(success, attempt.Message, attempt.Data, driver);
            }
        }

        return step.LegacyResultJson;
    }

    /// <summary>
    /// Earlier versions stored a step's output and its last result beside the attempt that holds the same data; the
    /// attempt is now the one place (a copy only an output holds is moved into its attempt).
    /// </summary>
    private static void UpgradeStoredLayout(RunState run)
    {
        foreach (var step in run.Steps)
        {
            if (step.LegacyOutput is { } output)
            {
                if (step.Status == StepStatus.Succeeded && step.Current is { Data: null } current)
                {
                    current.Data = output;
                }

                step.LegacyOutput = null;
            }

            if (step.LegacyResultJson is not null && step.Attempts.Exists(a => a.Success is not null && !a.TimedOut))
            {
                step.LegacyResultJson = null;
            }
        }
    }

    /// <summary>Files a step under its status in the derived lookups (not in <see cref="_unmet"/>: the full pass sets those).</summary>
    private void Track(StepState step)
    {
        if (!step.Status.IsTerminal())
        {
            _unsettled++;
        }

        if (step.Status.IsInFlight())
        {
            _inFlight.Add(step);
            if (step.Current is { Published: false })
            {
                _unpublished.Add(step);
            }

            if (step.DeadlineAt is { } deadline)
            {
                _due.Enqueue(step, deadline);
            }
        }
        else if (step.Status == StepStatus.Retrying && step.NextAttemptAt is { } next)
        {
            _due.Enqueue(step, next);
        }
    }

    /// <summary>Marks a step to be written by the next write.</summary>
    private void Touch(StepState step) => _dirty.Add(step);

    /// <summary>Every status change of a step goes through here, so the derived lookups follow it.</summary>
    private void SetStatus(StepState step, StepStatus status)
    {
        var was = step.Status;
        Touch(step);
        if (was == status)
        {
            return;
        }

        step.Status = status;
        if (was.IsInFlight() && !status.IsInFlight())
        {
            _inFlight.Remove(step);
            _unpublished.Remove(step);
        }
        else if (!was.IsInFlight() && status.IsInFlight())
        {
            _inFlight.Add(step);
        }

        if (!was.IsTerminal() && status.IsTerminal())
        {
            _unsettled--;
            _settled.Enqueue(step);
        }
        else if (was.IsTerminal() && !status.IsTerminal())
        {
            _unsettled++;
        }
    }

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
                if (step.Status.IsInFlight() && step.DeadlineAt == due)
                {
                    FailAttempt(step, TimeoutMessage(step, step.Current!), timedOut: true, now);
                    changed = true;
                }
                else if (step.Status == StepStatus.Retrying && step.NextAttemptAt == due)
                {
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

        var policy = spec.Retry ?? Run.Plan.Pipeline.Retry;
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
        if (!spec.AllowFailure && Run.Plan.Pipeline.FailurePolicy == FailurePolicy.FailFast)
        {
            CancelRemaining($"step {step.Id} {(timedOut ? "timed out" : "failed")}: {message}", now);
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
            return false;
        }

        var changed = false;
        if (_needsFullPass)
        {
            changed = FullPass(now);
        }

        while (_settled.TryDequeue(out var settled))
        {
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
                    SetStatus(dependent, StepStatus.Skipped);
                }
                else
                {
                    Release(dependent, now);
                }
            }
        }

        if (_unsettled == 0)
        {
            Finish(now);
            changed = true;
        }

        return changed;
    }

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
        Dispatch(step, now);
    }

    /// <summary>Whether a settled step lets its dependents run.</summary>
    private bool Satisfies(StepState step) =>
        step.Status == StepStatus.Succeeded || (step.Status is StepStatus.Failed or StepStatus.TimedOut && _graph.Spec(step).AllowFailure);

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
            if (step.Status != StepStatus.Pending)
            {
                continue;
            }

            var unmet = 0;
            var blocked = false;
            foreach (var dep in _graph.Spec(step).DependsOn)
            {
                var d = _graph.Step(dep);
                if (d.Status.IsTerminal() && Satisfies(d))
                {
                    continue;
                }

                unmet++;
                blocked |= d.Status.IsTerminal();
            }

            if (blocked)
            {
                SetStatus(step, StepStatus.Skipped);
                changed = true;
            }
            else if (unmet == 0)
            {
                Dispatch(step, now);
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

    /// <summary>Starts a new attempt of a step: decided now, published by the effects of the stored transition.</summary>
    private void Dispatch(StepState step, DateTimeOffset now)
    {
        var deadline = now + AttemptTimeout(_graph.Spec(step));
        step.NextAttemptAt = null;
        step.DeadlineAt = deadline;
        step.Attempts.Add(new AttemptState { Number = step.Attempts.Count + 1, DispatchedAt = now });
        SetStatus(step, StepStatus.Dispatched);
        _unpublished.Add(step);
        if (deadline is { } d)
        {
            _due.Enqueue(step, d);
        }
    }

    /// <summary>Every step settled: the run succeeded unless a step that may not fail failed, or a step was skipped or cancelled.</summary>
    private void Finish(DateTimeOffset now)
    {
        var failed = Run.Steps.Find(s => s.Status is StepStatus.Failed or StepStatus.TimedOut && !_graph.Spec(s).AllowFailure)
            ?? Run.Steps.Find(s => s.Status is StepStatus.Skipped or StepStatus.Cancelled);
        Run.Status = failed is null ? RunStatus.Succeeded : RunStatus.Failed;
        Run.FinishedAt = now;
        Run.DeadlineAt = null;
        if (failed is not null && string.IsNullOrEmpty(Run.Message))
        {
            Run.Message = $"step {failed.Id} {failed.Status.ToString().ToLowerInvariant()}: {failed.Current?.Message}";
        }
    }

    /// <summary>Fail-fast: nothing new starts, in-flight steps are cancelled; the run then finishes Failed.</summary>
    private void CancelRemaining(string reason, DateTimeOffset now)
    {
        Run.Message = reason;
        foreach (var step in Run.Steps)
        {
            StopStep(step, reason, now);
        }
    }

    /// <summary>Ends the run now (cancel, run timeout, supersession): every unfinished step is cancelled or skipped.</summary>
    private void EndRun(RunStatus status, string reason, DateTimeOffset now)
    {
        foreach (var step in Run.Steps)
        {
            StopStep(step, reason, now);
        }

        Run.Status = status;
        Run.Message = reason;
        Run.FinishedAt = now;
        Run.DeadlineAt = null;
        Note(new RunEndedNote(status, reason));
    }

    private void StopStep(StepState step, string reason, DateTimeOffset now)
    {
        if (step.Status is StepStatus.Pending or StepStatus.Retrying)
        {
            SetStatus(step, StepStatus.Skipped);
            step.NextAttemptAt = null;
        }
        else if (step.Status.IsInFlight())
        {
            SetStatus(step, StepStatus.Cancelled);
            step.DeadlineAt = null;
            var attempt = step.Current!;
            attempt.Message = reason;
            attempt.FinishedAt = now;
            QueueCancel(step, attempt, reason);
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
