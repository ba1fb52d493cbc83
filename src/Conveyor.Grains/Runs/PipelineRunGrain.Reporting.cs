using System.Diagnostics;
using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Events;
using Conveyor.Grains.Telemetry;
using Microsoft.Extensions.Logging;

namespace Conveyor.Grains.Runs;

/// <summary>
/// What the run tells the outside world about its transitions: metrics and CDEvents. Both come from one comparison of
/// the state about to be written with what was last reported (markers kept in the state itself), so every transition
/// path — start, results, timers, cancel, retry — is covered without a hook of its own, a transition is reported once
/// however many times the grain reactivates, and its events are in the same write as the transition (the outbox).
/// </summary>
public sealed partial class PipelineRunGrain
{
    private readonly List<Action> _afterWrite = [];

    // Trace context of the latest result handed in: the dispatches it causes continue from there. A grain turn does
    // not carry the caller's Activity, so it is taken from the call's request context.
    private ActivityContext _resultContext;

    private void NoteResultContext()
    {
        var context = ConveyorTelemetry.CallerContext();
        if (context != default)
        {
            _resultContext = context;
        }
    }

    /// <summary>Records what changed since the last report; runs just before every write of the state.</summary>
    private void CollectTransitions()
    {
        var emit = events.Options.Enabled;
        var now = time.GetUtcNow();
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
            _afterWrite.Add(() => metrics.RunStarted(ns, pipeline));
            if (emit)
            {
                AddRunEvent(CDEvents.PipelineRunStarted, "started", now, outcome: null, errors: null);
            }
        }

        // Only a step changed since the last write can hold an unreported attempt.
        foreach (var step in _dirty)
        {
            foreach (var attempt in step.Attempts)
            {
                if (attempt.StartReported && attempt.FinishReported)
                {
                    continue;
                }

                var driver = Specs[step.Id].Driver;
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
                    var duration = finishedAt - attempt.DispatchedAt;
                    _afterWrite.Add(() => metrics.StepFinished(driver, status, duration));
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
            _afterWrite.Add(() => metrics.RunFinished(ns, pipeline, status));
            if (emit)
            {
                AddRunEvent(
                    CDEvents.PipelineRunFinished, "finished", Run.FinishedAt ?? now, CDEvents.Outcome(status),
                    status == RunStatus.Succeeded ? null : Run.Message);
            }
        }

        Run.ReportedStatus = Run.Status;
        Run.ReportedRunAttempt = Run.RunAttempt;
    }

    /// <summary>Acts on what <see cref="CollectTransitions"/> found, once the state holding it is stored.</summary>
    private void ReportAfterWrite()
    {
        foreach (var report in _afterWrite)
        {
            report();
        }

        _afterWrite.Clear();
        ReportGauges();
    }

    private void ReportGauges()
    {
        if (!_exists || Run.Status.IsTerminal())
        {
            metrics.Forget(this.GetPrimaryKey());
            return;
        }

        metrics.Report(Run.RunId, _inFlight.Count, queued: Run.Status is RunStatus.Pending or RunStatus.Queued);
    }

    /// <summary>
    /// Publishes the outbox. Failure leaves it in place (in memory and in storage): the next transition, timer tick or
    /// activation publishes it again under the same ids, which JetStream de-duplicates.
    /// </summary>
    private async Task PublishEventsAsync()
    {
        if (Run.Outbox.Count == 0)
        {
            return;
        }

        var batch = Run.Outbox.ToArray();
        try
        {
            await events.PublishAsync(batch);
            // Cleared in memory; the next write stores the cleared outbox. A crash before that re-publishes duplicates.
            Run.Outbox.RemoveRange(0, batch.Length);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LogEventsFailed(logger, ex, Run.RunId, batch.Length);
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

    /// <summary>Starts the span of a run's start or retry and remembers its context as the run's trace.</summary>
    private Activity? StartRunActivity(string kind)
    {
        var activity = ConveyorTelemetry.Source.StartActivity(ConveyorTelemetry.RunStartActivity, ActivityKind.Internal, ConveyorTelemetry.CallerContext());
        if (activity is not null)
        {
            activity.SetTag("conveyor.run.id", Run.RunId.ToString());
            activity.SetTag("conveyor.run.attempt", Run.RunAttempt);
            activity.SetTag("conveyor.pipeline", Run.Plan.Pipeline.Name);
            activity.SetTag("conveyor.namespace", Run.Plan.Namespace);
            activity.SetTag("conveyor.run.kind", kind);
        }

        Run.TraceParent = activity?.Id ?? ConveyorTelemetry.Format(ConveyorTelemetry.CallerContext()) ?? Run.TraceParent;
        return activity;
    }

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
        Url = RunUrl(),
        Outcome = outcome,
        Errors = errors,
        RunAttempt = Run.RunAttempt,
    };

    private string? RunUrl() =>
        events.Options.BaseUrl is { Length: > 0 } b ? $"{b.TrimEnd('/')}/namespaces/{Run.Plan.Namespace}/runs/{Run.RunId}" : null;

    [LoggerMessage(Level = LogLevel.Warning, Message = "Run {RunId}: {Count} CDEvents could not be published; retried with the next transition")]
    private static partial void LogEventsFailed(ILogger logger, Exception exception, Guid runId, int count);
}
