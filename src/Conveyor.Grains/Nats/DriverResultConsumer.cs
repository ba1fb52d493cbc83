using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Runs;
using Conveyor.Grains.Telemetry;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;
using Orleans.Runtime;

namespace Conveyor.Grains.Nats;

/// <summary>
/// Consumes <c>pipelines.&gt;</c> on a durable consumer shared by every silo (so silos split the work and a dead
/// silo's unacked messages go to another) and routes each driver result to its run grain. A message is acked only
/// after the grain has persisted what it caused. A result that can never be applied (malformed, no run id) goes to the
/// dead letters at once; one whose run cannot take it now is delivered again after a growing delay
/// (<see cref="ConveyorNatsOptions.ResultBackoff"/>), and after <see cref="ConveyorNatsOptions.ResultMaxDeliver"/>
/// deliveries it goes to the dead letters too, so no result is retried for ever and other runs keep flowing.
/// </summary>
internal sealed partial class DriverResultConsumer(
    INatsConnection connection,
    IGrainFactory grains,
    DeadLetters deadLetters,
    IOptions<ConveyorNatsOptions> options,
    ILogger<DriverResultConsumer> logger) : DurableConsumerService(connection, logger)
{
    private readonly ConveyorNatsOptions _options = options.Value;

    /// <inheritdoc />
    protected override string StreamName => Subjects.PipelineEngineStream;

    /// <inheritdoc />
    protected override ConsumerConfig CreateConsumerConfig() => new(_options.ResultConsumerName)
    {
        FilterSubject = Subjects.PipelinesWildcard,
        AckPolicy = ConsumerConfigAckPolicy.Explicit,
        DeliverPolicy = ConsumerConfigDeliverPolicy.All,
        AckWait = _options.ResultAckWait,
        MaxAckPending = _options.ResultConcurrency * 4,
        // A backstop: the engine gives up at ResultMaxDeliver; the server stops only if silos keep dying on a message
        // (its advisory then moves the message to the dead letters, see MaxDeliveriesListener).
        MaxDeliver = _options.ResultMaxDeliver + 2,
        NumReplicas = _options.Replicas,
    };

    /// <inheritdoc />
    protected override async Task ConsumeAsync(NatsJSContext js, INatsJSConsumer consumer, CancellationToken cancellationToken)
    {
        using var slots = new SemaphoreSlim(_options.ResultConcurrency);
        var inFlight = new List<Task>();
        try
        {
            await foreach (var msg in consumer.ConsumeAsync<byte[]>(
                               opts: ConsumeOpts(_options.ResultConcurrency * 2),
                               cancellationToken: cancellationToken).ConfigureAwait(false))
            {
                await slots.WaitAsync(cancellationToken).ConfigureAwait(false);
                inFlight.RemoveAll(t => t.IsCompleted);
                inFlight.Add(HandleAndReleaseAsync(msg, slots));
            }
        }
        finally
        {
            // Drain: finish what was taken, so nothing is left half-applied and unacked results get acked.
            await Task.WhenAll(inFlight).ConfigureAwait(false);
        }
    }

    private async Task HandleAndReleaseAsync(INatsJSMsg<byte[]> msg, SemaphoreSlim slots)
    {
        try
        {
            await HandleAsync(msg).ConfigureAwait(false);
        }
        finally
        {
            slots.Release();
        }
    }

    /// <summary>Handles one message; acks unless the failure is transient (then naks so it comes back).</summary>
    private async Task HandleAsync(INatsJSMsg<byte[]> msg)
    {
        ResultEnvelope? evt;
        try
        {
            evt = msg.Data is { Length: > 0 } data ? JsonSerializer.Deserialize(data, ResultEnvelopeJsonContext.Default.ResultEnvelope) : null;
        }
        catch (JsonException ex)
        {
            LogMalformed(logger, ex, msg.Subject);
            await GiveUpAsync(msg, "malformed", $"not a driver result: {ex.Message}").ConfigureAwait(false);
            return;
        }

        if (evt is null || msg.Subject != Subjects.DriverResult || evt.Event != EventNames.DriverResult)
        {
            // Runs start through the API, so a start event (pipelines.pipeline.init) or anything else needs no work.
            LogIgnored(logger, msg.Subject, evt?.Event ?? "(empty)");
            await AckAsync(msg).ConfigureAwait(false);
            return;
        }

        // Explicit nulls pass the parser ("driverresult": null, "run_id": null): said at once, like any other message
        // that can never be applied, instead of failing on every redelivery.
        if (evt.DriverResult is null)
        {
            await GiveUpAsync(msg, "malformed", "a driver.result without its driverresult object").ConfigureAwait(false);
            return;
        }

        if (!Guid.TryParse(evt.RunId, out var runId))
        {
            var named = evt.RunId ?? "";
            LogUnroutable(logger, named, evt.DriverResult.Driver, "run_id is not a UUID");
            await GiveUpAsync(msg, "unroutable", $"run_id '{Abstractions.Names.Truncate(named)}' is not a run id (UUID)").ConfigureAwait(false);
            return;
        }

        var input = new DriverResultInput
        {
            Driver = evt.DriverResult.Driver,
            Success = evt.DriverResult.Success,
            Message = evt.DriverResult.Message,
            Data = evt.DriverResult.Data is { ValueKind: not JsonValueKind.Null and not JsonValueKind.Undefined } d ? d.GetRawText() : null,
            StepId = Header(msg.Headers, Headers.StepId),
            Attempt = int.TryParse(Header(msg.Headers, Headers.Attempt), NumberStyles.None, CultureInfo.InvariantCulture, out var a) ? a : null,
        };

        // A child of the driver's reconcile span when the driver sent its traceparent (the SDK does).
        using var activity = ConveyorTelemetry.Source.StartActivity(
            ConveyorTelemetry.ResultApplyActivity, ActivityKind.Consumer, ConveyorTelemetry.FromHeaders(msg.Headers));
        activity?.SetTag("conveyor.run.id", evt.RunId);
        activity?.SetTag("conveyor.driver", input.Driver);
        activity?.SetTag("conveyor.step", input.StepId);
        activity?.SetTag("conveyor.attempt", input.Attempt);
        activity?.SetTag("conveyor.result.success", input.Success);
        ApplyOutcome outcome;
        try
        {
            outcome = await grains.GetRunGrain(runId).ApplyResultAsync(input).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // Storage or the cluster is unavailable: let JetStream redeliver; the grain applies a result at most once.
            activity?.SetStatus(ActivityStatusCode.Error, ex.Message);
            var deliveries = msg.Metadata?.NumDelivered ?? 1;
            if (deliveries >= (ulong)_options.ResultMaxDeliver)
            {
                await GiveUpAsync(msg, "apply-failed", $"run {evt.RunId} could not take the result in {deliveries} deliveries; last error: {ex.GetType().Name}: {ex.Message}").ConfigureAwait(false);
                return;
            }

            LogApplyFailed(logger, ex, evt.RunId, input.Driver, deliveries, _options.ResultMaxDeliver);
            await NakAsync(msg, Delay(deliveries)).ConfigureAwait(false);
            return;
        }

        activity?.SetTag("conveyor.result.outcome", outcome.ToString());
        if (outcome is ApplyOutcome.Applied)
        {
            LogApplied(logger, evt.RunId, input.Driver, input.StepId, input.Success);
        }
        else
        {
            LogNotApplied(logger, evt.RunId, input.Driver, input.StepId, input.Attempt, outcome);
        }

        await AckAsync(msg).ConfigureAwait(false);
    }

    private static string? Header(NatsHeaders? headers, string name) =>
        headers is not null && headers.TryGetValue(name, out var values) && values.Count > 0 ? values[0] : null;

    private async Task AckAsync(INatsJSMsg<byte[]> msg)
    {
        try
        {
            await msg.AckAsync().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // The result is persisted; a lost ack only means a redelivery, which the grain ignores.
            LogAckFailed(logger, ex, msg.Subject);
        }
    }

    /// <summary>The delay before delivery <paramref name="deliveries"/> + 1: the backoff's entry for it, the last one repeating.</summary>
    private TimeSpan Delay(ulong deliveries)
    {
        var backoff = _options.EffectiveResultBackoff;
        return backoff[(int)Math.Min(deliveries - 1, (ulong)backoff.Count - 1)];
    }

    /// <summary>
    /// Moves the message to the dead letters and terminates it; if the move fails, it is delivered again (and moved
    /// then), so nothing is lost.
    /// </summary>
    private async Task GiveUpAsync(INatsJSMsg<byte[]> msg, string kind, string reason)
    {
        var metadata = msg.Metadata;
        try
        {
            await deadLetters.MoveAsync(
                Subjects.PipelineEngineStream, metadata?.Sequence.Stream ?? 0, msg.Subject, msg.Data, msg.Headers, metadata?.NumDelivered ?? 1, kind, reason).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LogDeadLetterFailed(logger, ex, msg.Subject);
            await NakAsync(msg, TimeSpan.FromSeconds(1)).ConfigureAwait(false);
            return;
        }

        try
        {
            await msg.AckTerminateAsync().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // Delivered again, then moved again: the dead-letter copy is de-duplicated by its sequence.
            LogAckFailed(logger, ex, msg.Subject);
        }
    }

    private async Task NakAsync(INatsJSMsg<byte[]> msg, TimeSpan delay)
    {
        try
        {
            await msg.NakAsync(new AckOpts { NakDelay = delay }).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            LogAckFailed(logger, ex, msg.Subject);
        }
    }


    [LoggerMessage(Level = LogLevel.Warning, Message = "Malformed message on {Subject}: moved to the dead letters")]
    private static partial void LogMalformed(ILogger logger, Exception exception, string subject);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Ignored {Event} message on {Subject}")]
    private static partial void LogIgnored(ILogger logger, string subject, string @event);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Result of driver {Driver} for run {RunId} cannot be routed: {Reason}; moved to the dead letters")]
    private static partial void LogUnroutable(ILogger logger, string runId, string driver, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Applying result of driver {Driver} to run {RunId} failed (delivery {Deliveries} of {MaxDeliver}); it will be redelivered")]
    private static partial void LogApplyFailed(ILogger logger, Exception exception, string runId, string driver, ulong deliveries, int maxDeliver);

    [LoggerMessage(Level = LogLevel.Error, Message = "Moving a message on {Subject} to the dead letters failed; it will be redelivered")]
    private static partial void LogDeadLetterFailed(ILogger logger, Exception exception, string subject);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Run {RunId}: result of driver {Driver} (step {Step}) applied, success={Success}")]
    private static partial void LogApplied(ILogger logger, string runId, string driver, string? step, bool success);

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId}: result of driver {Driver} (step {Step}, attempt {Attempt}) not applied: {Outcome}")]
    private static partial void LogNotApplied(ILogger logger, string runId, string driver, string? step, int? attempt, ApplyOutcome outcome);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Acknowledging a message on {Subject} failed")]
    private static partial void LogAckFailed(ILogger logger, Exception exception, string subject);
}
