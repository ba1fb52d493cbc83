using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;

namespace Conveyor.Grains.Runs.Engine;

/// <summary>
/// What users and other runs do to a running run: decide an approval gate, pause and resume it, and the end of a
/// sub-pipeline step's child run.
/// </summary>
/// <remarks>
/// Deadlines of a paused run keep running: its run timeout, the timeouts of attempts in flight, of approval gates and
/// of child runs all apply while it is paused (a pause holds new work back; it does not buy time). Retries that fall
/// due while paused wait for the resume and are dispatched by it.
/// </remarks>
internal sealed partial class RunStateMachine
{
    /// <summary>An approval gate is approved (the step succeeds) or rejected (it fails, and fail-fast applies).</summary>
    private string? OnApprove(ApproveStep input, DateTimeOffset now)
    {
        var step = _graph.FindStep(input.Step);
        if (step is null || step.IsInstance)
        {
            return $"run {Run.RunId} has no step {input.Step}";
        }

        var spec = _graph.Spec(step);
        if (spec.Kind != StepKind.Approval)
        {
            return $"step {step.Id} is not an approval step";
        }

        if (step.Status != StepStatus.WaitingForApproval || Run.Status.IsTerminal())
        {
            return $"step {step.Id} is {step.Status}, not waiting for approval";
        }

        var attempt = step.Current!;
        var by = input.By ?? "anonymous";
        var comment = string.IsNullOrWhiteSpace(input.Comment) ? null : input.Comment.Trim();
        step.Approval = new ApprovalRecord { Approved = input.Approved, By = input.By, At = now, Comment = comment };
        var message = $"{(input.Approved ? "approved" : "rejected")} by {by}{(comment is null ? "" : ": " + comment)}";
        EndOwnAttempt(step, attempt, input.Approved, message, now);
        Report(new ApprovalReport(Run.Plan.Namespace, Run.Plan.Pipeline.Name, input.Approved ? "approved" : "rejected", now - attempt.DispatchedAt));
        Note(new ApprovalNote(step.Id, input.Approved, input.By));
        if (input.Approved)
        {
            SetStatus(step, StepStatus.Succeeded);
        }
        else
        {
            SetStatus(step, StepStatus.Failed);
            FailFastAfter(step, $"approval {step.Id} {message}", now);
        }

        Advance(now);
        _persist = true;
        _follow = Follow.Transition;
        return null;
    }

    /// <summary>Pauses a running run: what is in flight goes on and is recorded; nothing new starts.</summary>
    private string? OnPause(string? by, DateTimeOffset now)
    {
        if (Run.Status != RunStatus.Running)
        {
            return $"run {Run.RunId} is {Run.Status}; only a Running run can be paused";
        }

        SetRunStatus(RunStatus.Paused);
        Run.PausedAt = now;
        Run.PausedBy = by;
        Note(new PauseNote(true, by));
        _persist = true;
        _follow = Follow.Transition;
        return null;
    }

    /// <summary>
    /// Resumes a paused run: the derived lookups are rebuilt (retries held back are filed again) and a tick dispatches
    /// what became ready and what fell due meanwhile.
    /// </summary>
    private string? OnResume(string? by, DateTimeOffset now)
    {
        if (Run.Status != RunStatus.Paused)
        {
            return $"run {Run.RunId} is {Run.Status}; only a Paused run can be resumed";
        }

        SetRunStatus(RunStatus.Running);
        Note(new PauseNote(false, by));
        var touched = _dirty.ToList();
        Rebuild();
        _dirty.UnionWith(touched);
        OnTick(now);
        _persist = true;
        _follow = Follow.Transition;
        return null;
    }

    /// <summary>A child run ended: its step ends as it did (a child that did not succeed fails the step), once.</summary>
    private void OnChildEnded(ChildEnded ended, DateTimeOffset now)
    {
        var step = _graph.FindStep(ended.Step);
        if (step is null || step.Status != StepStatus.Running || step.ChildRunId != ended.ChildRunId || _graph.Spec(step).Kind != StepKind.Pipeline)
        {
            // Told twice (the child's call and the keepalive's check), or about a child of an earlier attempt.
            return;
        }

        var succeeded = ended.Status == RunStatus.Succeeded;
        var message = $"child run {ended.ChildRunId} {ended.Status}" + (string.IsNullOrEmpty(ended.Message) ? "" : ": " + ended.Message);
        var attempt = step.Current!;
        EndOwnAttempt(step, attempt, succeeded, message, now);
        attempt.Data = succeeded ? ended.Outputs : null;
        Note(new StepFinishedNote(step.Id, attempt.Number, succeeded ? StepStatus.Succeeded : StepStatus.Failed));
        if (succeeded)
        {
            SetStatus(step, StepStatus.Succeeded);
        }
        else
        {
            SetStatus(step, StepStatus.Failed);
            FailFastAfter(step, $"step {step.Id} failed: {message}", now);
        }

        Advance(now);
        _persist = true;
        _follow = Follow.Transition;
    }

    /// <summary>The child run could not be started: the step fails.</summary>
    private void OnChildStartFailed(ChildStartFailed failed, DateTimeOffset now)
    {
        var step = _graph.FindStep(failed.Step);
        if (step is null || step.Status != StepStatus.Running || step.ChildRunId != failed.ChildRunId)
        {
            return;
        }

        EndOwnAttempt(step, step.Current!, success: false, failed.Message, now);
        SetStatus(step, StepStatus.Failed);
        FailFastAfter(step, $"step {step.Id} failed: {failed.Message}", now);
        Advance(now);
        _persist = true;
        _follow = Follow.Transition;
    }

    /// <summary>What this (child) run tells its parent at its end.</summary>
    private ChildEnded ChildEndedOf() =>
        new(Run.Plan.ParentStep ?? "", Run.RunId, Run.Status, Run.Message, Run.Status == RunStatus.Succeeded ? OutputsJson() : null);
}
