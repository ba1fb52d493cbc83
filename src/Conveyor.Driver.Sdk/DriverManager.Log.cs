using Microsoft.Extensions.Logging;

namespace Conveyor.Driver.Sdk;

/// <content>Log messages.</content>
public sealed partial class DriverManager
{
    [LoggerMessage(Level = LogLevel.Information, Message = "Driver {Driver} starting for resources {Resources} ({Options})")]
    private static partial void LogStarting(ILogger logger, string driver, IReadOnlyList<string> resources, DriverOptions options);

    [LoggerMessage(Level = LogLevel.Information, Message = "Driver {Driver} ready on consumers {Consumers}")]
    private static partial void LogReady(ILogger logger, string driver, IReadOnlyList<string> consumers);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Driver {Driver} could not set up its consumers; retrying in {Delay}")]
    private static partial void LogSetupFailed(ILogger logger, Exception exception, string driver, TimeSpan delay);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Pulling from consumer {Consumer} failed; retrying in {Delay}")]
    private static partial void LogPullFailed(ILogger logger, Exception exception, string consumer, TimeSpan delay);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Driver {Driver} reconciling {Event} of run {RunId}, resource {Resource}, step {Step}, attempt {Attempt}, delivery {DeliveryCount}")]
    private static partial void LogReconciling(ILogger logger, string driver, string @event, string runId, string resource, string? step, int? attempt, int deliveryCount);

    [LoggerMessage(Level = LogLevel.Information, Message = "Driver {Driver} processed {Event} of run {RunId}, resource {Resource}, step {Step}: success={Success}")]
    private static partial void LogProcessed(ILogger logger, string driver, string @event, string runId, string resource, string? step, bool success);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Driver {Driver} reconcile of run {RunId} step {Step} threw; reporting a failure")]
    private static partial void LogReconcileThrew(ILogger logger, Exception exception, string driver, string runId, string? step);

    [LoggerMessage(Level = LogLevel.Information, Message = "Driver {Driver} reconcile of run {RunId} step {Step} attempt {Attempt} was cancelled by the engine: {Reason}")]
    private static partial void LogCancelled(ILogger logger, string driver, string runId, string? step, int? attempt, string reason);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Driver {Driver} reconcile of run {RunId} step {Step} threw after the engine cancelled it")]
    private static partial void LogReconcileUnwound(ILogger logger, Exception exception, string driver, string runId, string? step);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Driver {Driver} ignored a cancel for run {RunId} step {Step} attempt {Attempt}: nothing of it is in flight here")]
    private static partial void LogCancelIgnored(ILogger logger, string driver, string runId, string step, int attempt);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Driver {Driver} ignored a malformed cancel message: {Error}")]
    private static partial void LogCancelMalformed(ILogger logger, Exception? exception, string driver, string error);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Driver {Driver} could not unsubscribe from cancel messages")]
    private static partial void LogUnsubscribeFailed(ILogger logger, Exception exception, string driver);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Driver {Driver} dropped a malformed message on {Subject} (run {RunId}): {Error}")]
    private static partial void LogMalformed(ILogger logger, string driver, string subject, string? runId, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Driver {Driver} could not publish the result of run {RunId}; the message comes back in {RetryDelay}")]
    private static partial void LogPublishFailed(ILogger logger, Exception exception, string driver, string runId, TimeSpan retryDelay);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Driver {Driver} could not acknowledge a message on {Subject}")]
    private static partial void LogAckFailed(ILogger logger, Exception exception, string driver, string subject);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Driver {Driver} could not send a progress heartbeat for a message on {Subject}")]
    private static partial void LogHeartbeatFailed(ILogger logger, Exception exception, string driver, string subject);

    [LoggerMessage(Level = LogLevel.Error, Message = "Driver {Driver} failed unexpectedly handling a message on {Subject}")]
    private static partial void LogUnexpected(ILogger logger, Exception exception, string driver, string subject);

    [LoggerMessage(Level = LogLevel.Information, Message = "Driver {Driver} handed a message on {Subject} back to JetStream")]
    private static partial void LogHandedBack(ILogger logger, string driver, string subject);

    [LoggerMessage(Level = LogLevel.Information, Message = "Driver {Driver} discarded the result of run {RunId} step {Step}: the message was handed back at shutdown")]
    private static partial void LogResultDiscarded(ILogger logger, string driver, string runId, string? step);

    [LoggerMessage(Level = LogLevel.Information, Message = "Driver {Driver} stopping; waiting up to {GracePeriod} for {Count} in-flight messages")]
    private static partial void LogDraining(ILogger logger, string driver, int count, TimeSpan gracePeriod);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Driver {Driver} stopped with {Count} reconciles that ignored cancellation still running")]
    private static partial void LogAbandoned(ILogger logger, string driver, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Driver {Driver} could not confirm that its last acknowledgements reached the server")]
    private static partial void LogFlushFailed(ILogger logger, Exception exception, string driver);

    [LoggerMessage(Level = LogLevel.Information, Message = "Driver {Driver} stopped")]
    private static partial void LogStopped(ILogger logger, string driver);
}
