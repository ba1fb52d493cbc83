using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;

namespace Conveyor.Grains.Runs.Engine;

/// <summary>
/// The lookups derived from the state (rebuilt on load, kept in step by <see cref="SetStatus"/>) and the stored layout
/// of earlier versions.
/// </summary>
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
        _mainUnsettled = 0;
        Dictionary<string, StepState>? latest = null;
        foreach (var top in Run.Steps)
        {
            foreach (var step in WithInstances(top))
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
                    _dirty.Add(top);
                }
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
        // Runs stored before the run events feed have no outbox for it.
        run.EventOutbox ??= [];
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

    /// <summary>A step followed by its matrix instances, if it has any.</summary>
    private static IEnumerable<StepState> WithInstances(StepState step)
    {
        yield return step;
        if (step.Instances is { } instances)
        {
            foreach (var instance in instances)
            {
                yield return instance;
            }
        }
    }

    /// <summary>
    /// Whether a step's in-flight status means an attempt at a driver (not a matrix step waiting for its instances,
    /// nor a sub-pipeline step waiting for its child run).
    /// </summary>
    private bool AtDriver(StepState step) => step.Instances is null && _graph.Spec(step).Kind == StepKind.Driver;

    /// <summary>Files a step under its status in the derived lookups (not in <see cref="_unmet"/>: the full pass sets those).</summary>
    private void Track(StepState step)
    {
        if (!step.Status.IsTerminal() && !step.IsInstance)
        {
            _unsettled++;
            if (!_graph.Spec(step).Finally)
            {
                _mainUnsettled++;
            }
        }

        if (step.Status.IsInFlight() && AtDriver(step))
        {
            _inFlight.Add(step);
            if (step.Current is { Published: false })
            {
                _unpublished.Add(step);
            }
        }

        if (step.Status is StepStatus.Dispatched or StepStatus.Running or StepStatus.WaitingForApproval && step.DeadlineAt is { } deadline)
        {
            _due.Enqueue(step, deadline);
        }
        else if (step.Status == StepStatus.Retrying && step.NextAttemptAt is { } next)
        {
            _due.Enqueue(step, next);
        }
    }

    /// <summary>Marks a step to be written by the next write (a matrix instance is written with its step).</summary>
    private void Touch(StepState step) => _dirty.Add(_graph.ParentOf(step) ?? step);

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
        if (status != StepStatus.Skipped)
        {
            step.SkipReason = SkipReason.None;
        }

        RecordTransition(step, was.ToString(), status.ToString());
        var atDriver = AtDriver(step);
        if (was.IsInFlight() && !status.IsInFlight())
        {
            _inFlight.Remove(step);
            _unpublished.Remove(step);
        }
        else if (!was.IsInFlight() && status.IsInFlight() && atDriver)
        {
            _inFlight.Add(step);
        }

        if (!was.IsTerminal() && status.IsTerminal())
        {
            _settled.Enqueue(step);
            Count(step, -1);
        }
        else if (was.IsTerminal() && !status.IsTerminal())
        {
            Count(step, 1);
        }
    }

    /// <summary>Counts a plan step in or out of the unsettled steps (instances settle into their step, which counts).</summary>
    private void Count(StepState step, int delta)
    {
        if (step.IsInstance)
        {
            return;
        }

        _unsettled += delta;
        if (!_graph.Spec(step).Finally)
        {
            _mainUnsettled += delta;
        }
    }

    /// <summary>Skips a step, saying why.</summary>
    private void Skip(StepState step, SkipReason reason, string message)
    {
        SetStatus(step, StepStatus.Skipped);
        step.SkipReason = reason;
        step.Reason = message;
        step.NextAttemptAt = null;
    }
}
