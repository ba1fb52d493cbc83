using Conveyor.Contracts;
using Conveyor.Grains.Runs.Engine;
using Microsoft.Extensions.Logging;

namespace Conveyor.Grains.Runs;

/// <summary>The run grain's log lines: what the machine noted about a stored decision, and what happened to its effects.</summary>
internal sealed partial class PipelineRunGrain
{
    private void LogNotes(IReadOnlyList<RunNote> notes)
    {
        foreach (var note in notes)
        {
            switch (note)
            {
                case StepFinishedNote step:
                    LogStepFinished(logger, Run.RunId, step.Step, step.Attempt, step.Status);
                    break;
                case RetryScheduledNote retry:
                    LogRetryScheduled(logger, Run.RunId, retry.Step, retry.Attempt, retry.NextAttemptAt);
                    break;
                case RunStartedNote started:
                    LogRunStarted(logger, Run.RunId, started.Pipeline, started.Revision);
                    break;
                case RunRetriedNote retried:
                    LogRunRetried(logger, Run.RunId, retried.RunAttempt);
                    break;
                case RunEndedNote ended:
                    LogRunEnded(logger, Run.RunId, ended.Status, ended.Reason);
                    break;
                case RunFinishedNote finished:
                    LogRunFinished(logger, Run.RunId, finished.Status);
                    break;
                case ConditionNote { Error: { } error } condition:
                    LogConditionFailed(logger, Run.RunId, condition.Step, error);
                    break;
                case ConditionNote condition:
                    LogCondition(logger, Run.RunId, condition.Step, condition.Runs);
                    break;
                case ApprovalNote approval:
                    LogApproval(logger, Run.RunId, approval.Step, approval.Approved ? "approved" : "rejected", approval.By ?? "anonymous");
                    break;
                case PauseNote pause:
                    LogPause(logger, Run.RunId, pause.Paused ? "paused" : "resumed", pause.By ?? "anonymous");
                    break;
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId} of pipeline {Pipeline} (revision {Revision}) started")]
    private static partial void LogRunStarted(ILogger logger, Guid runId, string pipeline, int revision);

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId} retried (run attempt {RunAttempt})")]
    private static partial void LogRunRetried(ILogger logger, Guid runId, int runAttempt);

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId} finished: {Status}")]
    private static partial void LogRunFinished(ILogger logger, Guid runId, RunStatus status);

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId} ended {Status}: {Reason}")]
    private static partial void LogRunEnded(ILogger logger, Guid runId, RunStatus status, string reason);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Run {RunId}: step {Step} attempt {Attempt} dispatched on {Subject}")]
    private static partial void LogDispatched(ILogger logger, Guid runId, string step, int attempt, string subject);

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId}: step {Step} attempt {Attempt} ended {Status}")]
    private static partial void LogStepFinished(ILogger logger, Guid runId, string step, int attempt, StepStatus status);

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId}: step {Step} attempt {Attempt} failed; next attempt at {NextAttemptAt}")]
    private static partial void LogRetryScheduled(ILogger logger, Guid runId, string step, int attempt, DateTimeOffset nextAttemptAt);

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId}: step {Step} waits for driver {Driver} (no consumer on {Subject})")]
    private static partial void LogWaitingForDriver(ILogger logger, Guid runId, string step, string driver, string subject);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Run {RunId}: dispatch of step {Step} on {Subject} failed; retrying")]
    private static partial void LogDispatchFailed(ILogger logger, Exception exception, Guid runId, string step, string subject);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Run {RunId}: cancel message for step {Step} could not be sent")]
    private static partial void LogCancelFailed(ILogger logger, Exception exception, Guid runId, string step);

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId} queued in {Queue} at position {Position}")]
    private static partial void LogQueued(ILogger logger, Guid runId, string queue, int position);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Run {RunId}: asking queue {Queue} for a slot failed; asked again by the keepalive")]
    private static partial void LogAdmissionFailed(ILogger logger, Exception exception, Guid runId, string queue);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Run {RunId}: releasing its slot in queue {Queue} failed; released again by the keepalive")]
    private static partial void LogReleaseFailed(ILogger logger, Exception exception, Guid runId, string queue);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Run {RunId}: its keepalive reminder changed since it was registered; unregistering the current one")]
    private static partial void LogReminderStale(ILogger logger, Exception exception, Guid runId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Run {RunId}: listing index update failed; repaired later")]
    private static partial void LogIndexFailed(ILogger logger, Exception exception, Guid runId);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Run {RunId}: the condition of step {Step} says it runs: {Runs}")]
    private static partial void LogCondition(ILogger logger, Guid runId, string step, bool runs);

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId}: the condition of step {Step} could not be evaluated: {Error}")]
    private static partial void LogConditionFailed(ILogger logger, Guid runId, string step, string error);

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId}: approval step {Step} {Decision} by {By}")]
    private static partial void LogApproval(ILogger logger, Guid runId, string step, string decision, string by);

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId} {Change} by {By}")]
    private static partial void LogPause(ILogger logger, Guid runId, string change, string by);

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId}: step {Step} started child run {ChildRunId} of pipeline {Pipeline}")]
    private static partial void LogChildStarted(ILogger logger, Guid runId, string step, Guid childRunId, string pipeline);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Run {RunId}: step {Step} could not reach its child run {ChildRunId}; asked again by the keepalive")]
    private static partial void LogChildStartFailed(ILogger logger, Exception exception, Guid runId, string step, Guid childRunId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Run {RunId}: cancelling child run {ChildRunId} failed")]
    private static partial void LogChildCancelFailed(ILogger logger, Exception exception, Guid runId, Guid childRunId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Run {RunId}: {Count} CDEvents or run event batches could not be published; retried with the next transition")]
    private static partial void LogEventsFailed(ILogger logger, Exception exception, Guid runId, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Run {RunId}: dispatch of step {Step} attempt {Attempt} can never be published: {Error}")]
    private static partial void LogDispatchTooLarge(ILogger logger, Guid runId, string step, int attempt, string error);

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId} of pipeline {Pipeline} in namespace {Namespace} deleted")]
    private static partial void LogDeleted(ILogger logger, Guid runId, string @namespace, string pipeline);

    [LoggerMessage(Level = LogLevel.Error, Message = "Run {RunId}: its stored record cannot be read")]
    private static partial void LogUnreadable(ILogger logger, Exception exception, Guid runId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Run {RunId}: storing that the finished run is settled failed; its next activation publishes its last events and files it again")]
    private static partial void LogSettleFailed(ILogger logger, Exception exception, Guid runId);
}
