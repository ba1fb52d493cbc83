using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Events;

namespace Conveyor.Grains.Runs.Engine;

/// <summary>
/// What the run tells the outside world about its transitions: metrics and CDEvents. Both come from one comparison of
/// the state about to be stored with what was last reported (markers kept in the state itself), so every transition
/// path — start, results, timers, cancel, retry — is covered without a hook of its own, a transition is reported once
/// however many times the run is reloaded, and its events are in the same write as the transition (the outbox).
/// </summary>
internal sealed partial class RunStateMachine
{
    /// <summary>Records what changed since the last report; runs at the end of every decision that stores the state.</summary>
    private void CollectTransitions(DateTimeOffset now)
    {
        var emit = _options.EmitEvents;
        var ns = Run.Plan.Namespace;
        var pipeline = Run.Plan.Pipeline.Name;
        var newRunAttempt = Run.ReportedRunAttempt != Run.RunAttempt;
        var reported = newRunAttempt ? null : Run.ReportedStatus;

        // The run's first write, whatever status it is stored with (a triggered run may be stored Queued or Running).
        if (Run.ReportedStatus is null && emit)
        {
            AddRunEvent(CDEvents.PipelineRunQueued, "queued", Run.CreatedAt, outcome: null, errors: null);
        }

        if (Run.StartedAt is not null && Run.Status is not (RunStatus.Pending or RunStatus.Queued) && reported is null or RunStatus.Pending or RunStatus.Queued)
        {
            Report(new RunStartedReport(ns, pipeline));
            if (emit)
            {
                AddRunEvent(CDEvents.PipelineRunStarted, "started", now, outcome: null, errors: null);
            }
        }

        // Only a step changed since the last write can hold an unreported attempt (an instance is written with its step).
        foreach (var step in _dirty.SelectMany(WithInstances))
        {
            foreach (var attempt in step.Attempts)
            {
                if (attempt.StartReported && attempt.FinishReported)
                {
                    continue;
                }

                var driver = Label(_graph.Spec(step));
                if (!attempt.StartReported)
                {
                    attempt.StartReported = true;
                    if (emit)
                    {
                        AddTaskEvent(step.Id, attempt, driver, CDEvents.TaskRunStarted, "started", attempt.DispatchedAt, null, null);
                    }
                }

                if (attempt.FinishedAt is { } finishedAt && !attempt.FinishReported)
                {
                    attempt.FinishReported = true;
                    var status = attempt.Success == true ? StepStatus.Succeeded
                        : attempt.TimedOut ? StepStatus.TimedOut
                        : attempt.Success is null ? StepStatus.Cancelled
                        : StepStatus.Failed;
                    Report(new StepFinishedReport(driver, status, finishedAt - attempt.DispatchedAt));
                    if (emit)
                    {
                        AddTaskEvent(
                            step.Id, attempt, driver, CDEvents.TaskRunFinished, "finished", finishedAt, CDEvents.Outcome(status),
                            status == StepStatus.Succeeded ? null : attempt.Message);
                    }
                }
            }
        }

        if (Run.Status.IsTerminal() && (reported is null || !reported.Value.IsTerminal()))
        {
            var status = Run.Status;
            Report(new RunFinishedReport(ns, pipeline, status));
            if (emit)
            {
                AddRunEvent(
                    CDEvents.PipelineRunFinished, "finished", Run.FinishedAt ?? now, CDEvents.Outcome(status),
                    status == RunStatus.Succeeded ? null : Run.Message);
            }
        }

        Run.ReportedStatus = Run.Status;
        Run.ReportedRunAttempt = Run.RunAttempt;
        FlushTransitions(now);
    }

    /// <summary>Who does a step's work, as events and metrics name it: its driver, <c>approval</c>, or <c>pipeline:&lt;name&gt;</c>.</summary>
    private static string Label(StepSpec spec) => spec.Kind switch
    {
        StepKind.Approval => "approval",
        StepKind.Pipeline => "pipeline:" + spec.Pipeline,
        _ => spec.Driver,
    };

    /// <summary>Every change of the run's status goes through here, so the run events feed sees it.</summary>
    private void SetRunStatus(RunStatus status)
    {
        var was = Run.Status;
        if (was != status)
        {
            Run.Status = status;
            RecordTransition(null, was.ToString(), status.ToString());
        }
    }

    private void RecordTransition(StepState? step, string previous, string status)
    {
        if (_options.EmitRunEvents)
        {
            _transitions.Add((step, previous, status, Run.Status));
        }
    }

    /// <summary>
    /// The transitions of the decision being stored become one batch of the run events outbox, numbered on from the
    /// run's last, in the same write as the transitions themselves.
    /// </summary>
    private void FlushTransitions(DateTimeOffset now)
    {
        if (_transitions.Count == 0)
        {
            return;
        }

        var batch = new RunEventBatch { First = Run.EventSequence + 1, Items = new List<RunTransition>(_transitions.Count) };
        foreach (var (step, previous, status, runStatus) in _transitions)
        {
            batch.Items.Add(new RunTransition
            {
                Sequence = ++Run.EventSequence,
                At = now,
                Step = step?.Id,
                Previous = previous,
                Status = status,
                Attempt = step?.Current?.Number ?? 0,
                Message = TransitionMessage(step, status),
                RunStatus = runStatus,
            });
        }

        _transitions.Clear();
        Run.EventOutbox.Add(batch);
    }

    /// <summary>What is worth saying with a transition: why a step or the run ended, why a step was skipped, what a gate waits for.</summary>
    private string? TransitionMessage(StepState? step, string status)
    {
        if (step is null)
        {
            return Run.Status.IsTerminal() && Run.Message.Length > 0 ? Truncate(Run.Message) : null;
        }

        return step.Status.IsTerminal() || step.Status == StepStatus.WaitingForApproval || status == nameof(StepStatus.Retrying)
            ? Truncate(MessageOf(step)) is { Length: > 0 } message ? message : null
            : null;
    }

    private static string Truncate(string text) => text.Length <= 1024 ? text : text[..1024];

    // The outbox holds what an event says, not its JSON: it is stored with the transition, and the JSON (about 1 KB)
    // is built once, as it is published.
    private void AddRunEvent(string type, string transition, DateTimeOffset at, string? outcome, string? errors) =>
        Run.Outbox.Add(RunEvent($"{Run.RunId}:{Run.RunAttempt}:pipelinerun.{transition}", type, at, outcome, errors));

    private void AddTaskEvent(string step, AttemptState attempt, string driver, string type, string transition, DateTimeOffset at, string? outcome, string? errors)
    {
        var e = RunEvent($"{Run.RunId}:{step}:{attempt.Number}:taskrun.{transition}", type, at, outcome, errors);
        e.Step = step;
        e.Attempt = attempt.Number;
        e.Driver = driver;
        Run.Outbox.Add(e);
    }

    /// <summary>An outbox entry with what every event of this run carries.</summary>
    private OutboxEvent RunEvent(string id, string type, DateTimeOffset at, string? outcome, string? errors) => new()
    {
        Id = id,
        Type = type,
        Namespace = Run.Plan.Namespace,
        At = at,
        RunId = Run.RunId,
        Pipeline = Run.Plan.Pipeline.Name,
        Url = _options.EventsBaseUrl is { Length: > 0 } b ? $"{b.TrimEnd('/')}/namespaces/{Run.Plan.Namespace}/runs/{Run.RunId}" : null,
        Outcome = outcome,
        Errors = errors,
        RunAttempt = Run.RunAttempt,
    };
}
