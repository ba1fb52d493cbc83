using System.Text.Json;
using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;

namespace Conveyor.Grains.Runs.Engine;

/// <summary>
/// What a ready step does: its condition first, then by kind — a driver attempt, a matrix of instances, an approval
/// gate, or a child run — and what each kind does at its deadline.
/// </summary>
internal sealed partial class RunStateMachine
{
    /// <summary>
    /// Every dependency of the step is done (or, for a finally step, every main step has ended): its condition decides
    /// whether it runs; a condition that cannot be evaluated fails the step.
    /// </summary>
    private void Ready(StepState step, DateTimeOffset now)
    {
        var spec = _graph.Spec(step);
        if (spec.When is { } when)
        {
            var result = _options.Conditions.Evaluate(when, ScopeOf(step, spec));
            Note(new ConditionNote(step.Id, result.Value, result.Error));
            if (result.Error is { } error)
            {
                FailUnstarted(step, $"condition '{when}' could not be evaluated: {error}", now);
                return;
            }

            if (!result.Value)
            {
                Skip(step, SkipReason.Condition, $"condition '{when}' is false");
                return;
            }
        }

        switch (spec.Kind)
        {
            case StepKind.Approval:
                WaitForApproval(step, spec, now);
                break;
            case StepKind.Pipeline:
                StartChildStep(step, spec, now);
                break;
            default:
                if (spec.Matrix is not null)
                {
                    Expand(step, spec, now);
                }
                else
                {
                    Dispatch(step, now);
                }

                break;
        }
    }

    /// <summary>A step fails without an attempt (a condition or a matrix that cannot be evaluated, a child that cannot start).</summary>
    private void FailUnstarted(StepState step, string reason, DateTimeOffset now)
    {
        step.Reason = reason;
        step.DeadlineAt = null;
        SetStatus(step, StepStatus.Failed);
        FailFastAfter(step, $"step {step.Id} failed: {reason}", now);
    }

    /// <summary>What a condition sees when <paramref name="step"/> becomes ready.</summary>
    private ConditionScope ScopeOf(StepState step, StepSpec spec)
    {
        var plan = Run.Plan;
        var inputs = new List<KeyValuePair<string, string?>>(spec.DependsOn.Count);
        foreach (var dep in spec.DependsOn)
        {
            inputs.Add(new(dep, _graph.Step(dep).Output));
        }

        return new ConditionScope
        {
            Params = DispatchMessages.MergeParams(spec.Params, plan.Params)?.GetRawText(),
            Inputs = inputs,
            StepIds = plan.Pipeline.Steps.ConvertAll(s => s.Id),
            Step = id => _graph.FindStep(id) is { IsInstance: false } s ? (s.Status.ToString(), s.Output) : null,
            Resource = plan.Resource,
            Trigger = plan.Trigger,
            TriggerId = plan.TriggerId,
            RunId = Run.RunId,
            // The finally steps see what the main steps make of the run; the main steps see it running.
            RunStatus = spec.Finally ? (FailureAmong(finallySteps: false) is null ? RunStatus.Succeeded : RunStatus.Failed).ToString() : Run.Status.ToString(),
            Pipeline = plan.Pipeline.Name,
            Namespace = plan.Namespace,
            RunAttempt = Run.RunAttempt,
        };
    }

    /// <summary>Starts a new attempt of a driver step: decided now, published by the effects of the stored transition.</summary>
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

    /// <summary>
    /// An attempt that no driver works on (an approval's wait, a child run): it starts as published, so nothing sends
    /// it, and ends as its decision or child does.
    /// </summary>
    private AttemptState StartOwnAttempt(StepState step, StepSpec spec, DateTimeOffset now)
    {
        var attempt = new AttemptState { Number = step.Attempts.Count + 1, DispatchedAt = now, Published = true, PublishedAt = now };
        step.Attempts.Add(attempt);
        step.NextAttemptAt = null;
        step.DeadlineAt = now + spec.Timeout;
        if (step.DeadlineAt is { } deadline)
        {
            _due.Enqueue(step, deadline);
        }

        return attempt;
    }

    /// <summary>An approval gate starts waiting; its timeout (if any) fails it.</summary>
    private void WaitForApproval(StepState step, StepSpec spec, DateTimeOffset now)
    {
        StartOwnAttempt(step, spec, now).Message = $"waiting for approval (role {spec.Approvers ?? "operator"})";
        step.Approval = null;
        SetStatus(step, StepStatus.WaitingForApproval);
    }

    /// <summary>
    /// A sub-pipeline step starts its child run: the id is derived from this run, the step and the run attempt, so
    /// starting it again (after a crash, or from the keepalive's check) names the same child.
    /// </summary>
    private void StartChildStep(StepState step, StepSpec spec, DateTimeOffset now)
    {
        if (Run.Plan.Depth >= _options.MaxDepth)
        {
            FailUnstarted(step, $"sub-pipelines nest at most {_options.MaxDepth} deep; this run is {Run.Plan.Depth} deep", now);
            return;
        }

        var child = RunIds.Child(Run.RunId, step.Id, Run.RunAttempt);
        StartOwnAttempt(step, spec, now).Message = $"child run {child} of pipeline {spec.Pipeline}";
        step.ChildRunId = child;
        SetStatus(step, StepStatus.Running);
        Then(StartChildOf(step)!);
    }

    /// <summary>The effect that starts a running sub-pipeline step's child; null for any other step.</summary>
    private StartChild? StartChildOf(StepState step)
    {
        var spec = _graph.Spec(step);
        return spec.Kind == StepKind.Pipeline && step.ChildRunId is { } child
            ? new StartChild(step.Id, child, spec.Pipeline!, DispatchMessages.MergeParams(spec.Params, Run.Plan.Params)?.GetRawText())
            : null;
    }

    /// <summary>A matrix step fans out: its instances are made once (a retried run keeps them) and dispatched up to its limit.</summary>
    private void Expand(StepState step, StepSpec spec, DateTimeOffset now)
    {
        if (step.Instances is null)
        {
            var (combinations, error) = MatrixCombinations.Of(spec, _graph);
            if (error is not null)
            {
                FailUnstarted(step, error, now);
                return;
            }

            step.Instances = new List<StepState>(combinations!.Count);
            for (var i = 0; i < combinations.Count; i++)
            {
                step.Instances.Add(new StepState { Id = $"{step.Id}[{i}]", Matrix = combinations[i] });
            }

            _graph.AddInstances(step);
        }

        SetStatus(step, StepStatus.Running);
        OnInstanceSettled(step, now);
    }

    /// <summary>
    /// An instance of a matrix step ended (or the step just started): the next waiting instances are dispatched up to
    /// its <c>maxParallel</c>, and the step ends once every instance has. Returns whether anything changed.
    /// </summary>
    private bool OnInstanceSettled(StepState step, DateTimeOffset now)
    {
        if (step.Status != StepStatus.Running || step.Instances is not { } instances)
        {
            return false;
        }

        var active = 0;
        var waiting = 0;
        foreach (var instance in instances)
        {
            if (instance.Status == StepStatus.Pending)
            {
                waiting++;
            }
            else if (!instance.Status.IsTerminal())
            {
                active++;
            }
        }

        if (waiting == 0 && active == 0)
        {
            SettleMatrix(step);
            return true;
        }

        if (Run.Status != RunStatus.Running || waiting == 0)
        {
            return false;
        }

        var limit = _graph.Spec(step).Matrix?.MaxParallel ?? int.MaxValue;
        var changed = false;
        foreach (var instance in instances)
        {
            if (active >= limit)
            {
                break;
            }

            if (instance.Status == StepStatus.Pending)
            {
                Dispatch(instance, now);
                active++;
                changed = true;
            }
        }

        return changed;
    }

    /// <summary>Every instance ended: the step failed if one failed, was cancelled if one was stopped, else succeeded.</summary>
    private void SettleMatrix(StepState step)
    {
        var instances = step.Instances!;
        var failed = instances.Find(i => i.Status is StepStatus.Failed or StepStatus.TimedOut);
        var stopped = instances.Find(i => i.Status is StepStatus.Cancelled or StepStatus.Skipped);
        if (failed is not null)
        {
            step.Reason = $"instance {failed.Id} {failed.Status.ToString().ToLowerInvariant()}: {MessageOf(failed)}";
            SetStatus(step, StepStatus.Failed);
        }
        else if (stopped is not null)
        {
            step.Reason = $"instance {stopped.Id} {stopped.Status.ToString().ToLowerInvariant()}: {MessageOf(stopped)}";
            SetStatus(step, StepStatus.Cancelled);
        }
        else
        {
            step.Reason = null;
            SetStatus(step, StepStatus.Succeeded);
        }
    }

    /// <summary>A step's deadline passed: a driver attempt times out, an approval fails, a child run is cancelled and the step times out.</summary>
    private void OnDeadline(StepState step, DateTimeOffset now)
    {
        var spec = _graph.Spec(step);
        var attempt = step.Current!;
        switch (spec.Kind)
        {
            case StepKind.Approval:
                var reason = $"no decision within {spec.Timeout}";
                Report(new ApprovalReport(Run.Plan.Namespace, Run.Plan.Pipeline.Name, "timedout", now - attempt.DispatchedAt));
                EndOwnAttempt(step, attempt, success: false, reason, now);
                SetStatus(step, StepStatus.Failed);
                FailFastAfter(step, $"approval {step.Id} failed: {reason}", now);
                break;
            case StepKind.Pipeline:
                var timeout = $"child run {step.ChildRunId} did not end within {spec.Timeout}";
                EndOwnAttempt(step, attempt, success: false, timeout, now);
                attempt.TimedOut = true;
                if (step.ChildRunId is { } child)
                {
                    _childCancels.Add(new CancelChild(child, $"parent step {step.Id} timed out"));
                }

                SetStatus(step, StepStatus.TimedOut);
                FailFastAfter(step, $"step {step.Id} timed out: {timeout}", now);
                break;
            default:
                FailAttempt(step, TimeoutMessage(step, attempt), timedOut: true, now);
                break;
        }
    }

    /// <summary>Ends an attempt no driver worked on.</summary>
    private void EndOwnAttempt(StepState step, AttemptState attempt, bool success, string message, DateTimeOffset now)
    {
        Touch(step);
        attempt.FinishedAt = now;
        attempt.Success = success;
        attempt.Message = message;
        step.DeadlineAt = null;
    }

    /// <summary>The JSON object of the outputs of the run's succeeded steps, by step id (what a parent's step outputs); null when none.</summary>
    private string? OutputsJson()
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            foreach (var step in Run.Steps)
            {
                if (step.Output is { } output)
                {
                    writer.WritePropertyName(step.Id);
                    writer.WriteRawValue(output, skipInputValidation: true);
                }
            }

            writer.WriteEndObject();
        }

        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }
}
