using System.Text.Json;
using Conveyor.Contracts;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;
using Orleans.Runtime;

namespace Conveyor.Grains.Nats;

/// <summary>
/// The backstop of the result consumer's dead-lettering: when silos keep dying while applying a result, the server stops
/// delivering it after its MaxDeliver and says so in an advisory — but a work-queue stream keeps the unacknowledged
/// message for ever. This listener (one silo per advisory: a queue group) copies that message to the dead letters and
/// deletes it from the stream.
/// </summary>
internal sealed partial class MaxDeliveriesListener(
    INatsConnection connection, DeadLetters deadLetters, IOptions<ConveyorNatsOptions> options, ILogger<MaxDeliveriesListener> logger)
    : SiloBackgroundLoop
{
    private const string QueueGroup = "conveyor-engine-advisories";

    protected override async Task RunAsync(CancellationToken cancellationToken)
    {
        var subject = $"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{Subjects.PipelineEngineStream}.{options.Value.ResultConsumerName}";
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await foreach (var msg in connection.SubscribeAsync<byte[]>(subject, queueGroup: QueueGroup, cancellationToken: cancellationToken).ConfigureAwait(false))
                {
                    await HandleAsync(msg.Data, cancellationToken).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                LogSubscriptionFailed(logger, ex);
                try
                {
                    await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    private async Task HandleAsync(byte[]? advisory, CancellationToken cancellationToken)
    {
        ulong sequence;
        ulong deliveries;
        try
        {
            using var document = JsonDocument.Parse(advisory ?? []);
            sequence = document.RootElement.GetProperty("stream_seq").GetUInt64();
            deliveries = document.RootElement.TryGetProperty("deliveries", out var d) ? d.GetUInt64() : 0;
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            LogMalformed(logger, ex);
            return;
        }

        try
        {
            var message = await StoredMessages.BySequenceAsync(connection, Subjects.PipelineEngineStream, sequence, cancellationToken).ConfigureAwait(false);
            if (message is null)
            {
                // Acknowledged meanwhile (the last delivery did get through): nothing is stuck.
                return;
            }

            await deadLetters.MoveAsync(
                Subjects.PipelineEngineStream, sequence, message.Subject, message.Data, message.Headers, deliveries, "max-deliveries",
                $"the server stopped delivering it after {deliveries} deliveries: the silos that took it did not finish applying it", cancellationToken).ConfigureAwait(false);
            await new NatsJSContext(connection).DeleteMessageAsync(Subjects.PipelineEngineStream, new StreamMsgDeleteRequest { Seq = sequence }, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LogMoveFailed(logger, ex, sequence);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "The max-deliveries advisory subscription failed; subscribing again")]
    private static partial void LogSubscriptionFailed(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Warning, Message = "A malformed max-deliveries advisory was ignored")]
    private static partial void LogMalformed(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Error, Message = "Result {Sequence} reached the server's max deliveries but could not be moved to the dead letters; it stays in the stream")]
    private static partial void LogMoveFailed(ILogger logger, Exception exception, ulong sequence);
}
