using System.Collections.ObjectModel;
using System.Globalization;
using System.Text.Json;
using Conveyor.Contracts;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Conveyor.Driver.Sdk;

/// <content>Messages in and out: malformed deliveries, results, the step logger, decoding a dispatch.</content>
public sealed partial class DriverManager
{
    private async Task HandleMalformedAsync(Delivery delivery, string? runId, string error, CancellationToken abort)
    {
        var msg = delivery.Message;
        LogMalformed(_logger, Name, msg.Subject, runId, error);
        if (!delivery.TryBeginSettle())
        {
            return;
        }

        if (!string.IsNullOrEmpty(runId))
        {
            try
            {
                await PublishResultAsync(runId, null, DriverResult.Fail("Malformed driver message: " + error), msg.Headers, stepId: null, attempt: null, abort).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                LogPublishFailed(_logger, ex, Name, runId, _options.RetryDelay);
                await delivery.StopHeartbeatAsync().ConfigureAwait(false);
                await NakQuietlyAsync(msg, _options.RetryDelay).ConfigureAwait(false);
                return;
            }
        }

        await delivery.StopHeartbeatAsync().ConfigureAwait(false);
        try
        {
            // Terminate: a message that cannot be decoded now never will be; redelivering it would loop forever.
            await msg.AckTerminateAsync(cancellationToken: CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            LogAckFailed(_logger, ex, Name, msg.Subject);
        }
    }

    /// <summary>
    /// Publishes a result with the incoming message's echoed headers; <paramref name="stepId"/> and
    /// <paramref name="attempt"/>, when known from the message body, replace the step headers so the engine can match
    /// the result even when the dispatch carried them only in JSON.
    /// </summary>
    private async Task PublishResultAsync(
        string runId, Resource? resource, DriverResult result, NatsHeaders? incoming, string? stepId, int? attempt, CancellationToken cancellationToken, string? traceParent = null)
    {
        var pipelineEvent = new PipelineEvent
        {
            Event = EventNames.DriverResult,
            RunId = runId,
            Resource = resource,
            DriverResult = new DriverResultEvent
            {
                Success = result.Success,
                Message = result.Message ?? "",
                Data = result.Data,
                Driver = Name,
            },
        };
        var body = JsonSerializer.SerializeToUtf8Bytes(pipelineEvent, ConveyorJson.Context.PipelineEvent);

        var headers = new NatsHeaders();
        if (!string.IsNullOrEmpty(runId))
        {
            headers[Headers.RunId] = runId;
        }

        foreach (var name in EchoedHeaders)
        {
            if (Header(incoming, name) is { } value)
            {
                headers[name] = value;
            }
        }

        if (!string.IsNullOrEmpty(stepId))
        {
            headers[Headers.StepId] = stepId;
        }

        if (attempt is { } number)
        {
            headers[Headers.Attempt] = number.ToString(CultureInfo.InvariantCulture);
        }

        if (traceParent is not null)
        {
            // The engine's handling of the result continues from the reconcile, not from the dispatch.
            headers[Headers.TraceParent] = traceParent;
        }

        // Throws when JetStream did not store it (refused, no stream, no answer in the connection's request timeout).
        await _results.PublishAsync(Subjects.DriverResult, body, headers, cancellationToken).ConfigureAwait(false);
    }

    private DriverLogger CreateLogger(DriverEvent driverEvent)
    {
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        if (driverEvent.StepId is { } step)
        {
            labels["step"] = step;
        }

        if (driverEvent.Attempt is { } attempt)
        {
            labels["attempt"] = attempt.ToString(CultureInfo.InvariantCulture);
        }

        return new DriverLogger(_connection, _jetStream, _timeProvider, driverEvent.RunId, Name, driverEvent.Resource.Pipeline ?? "", labels, _logger);
    }

    /// <summary>
    /// Decodes a message. <see cref="DriverMessage.Step"/> and <see cref="DriverMessage.Attempt"/> win over the
    /// <c>Conveyor-Step-Id</c>/<c>Conveyor-Attempt</c> headers; messages of the original engine have neither field.
    /// </summary>
    private static Decoded Decode(INatsJSMsg<byte[]> msg)
    {
        var runId = Header(msg.Headers, Headers.RunId);
        var data = msg.Data ?? [];
        DriverMessage? message;
        try
        {
            message = JsonSerializer.Deserialize(data, ConveyorJson.Context.DriverMessage);
        }
        catch (JsonException ex)
        {
            return new Decoded(null, runId ?? ScanRunId(data), "the message is not a driver message: " + ex.Message);
        }

        if (message is null)
        {
            return new Decoded(null, runId, "the message is empty");
        }

        if (!string.IsNullOrEmpty(message.RunId))
        {
            runId = message.RunId;
        }

        Resource resource;
        try
        {
            resource = ConveyorJson.DeserializeResource(message.Payload);
        }
        catch (JsonException ex)
        {
            return new Decoded(null, runId, "the payload is not a resource: " + ex.Message);
        }

        var driverEvent = new DriverEvent
        {
            Event = message.Event,
            RunId = runId ?? "",
            MessageId = message.Id,
            Payload = message.Payload,
            Resource = resource,
            Subject = msg.Subject,
            StepId = string.IsNullOrEmpty(message.Step) ? Header(msg.Headers, Headers.StepId) : message.Step,
            Attempt = message.Attempt
                ?? (int.TryParse(Header(msg.Headers, Headers.Attempt), NumberStyles.None, CultureInfo.InvariantCulture, out var attempt) ? attempt : null),
            Params = message.Params,
            StepToken = message.StepToken,
            Variables = message.Variables is { Count: > 0 } variables
                ? new ReadOnlyDictionary<string, string>(new Dictionary<string, string>(variables, StringComparer.Ordinal))
                : ReadOnlyDictionary<string, string>.Empty,
            Inputs = message.Inputs is { Count: > 0 } inputs
                ? new ReadOnlyDictionary<string, JsonElement>(new Dictionary<string, JsonElement>(inputs, StringComparer.Ordinal))
                : ReadOnlyDictionary<string, JsonElement>.Empty,
            DeliveryCount = msg.Metadata is { } metadata ? (int)Math.Min(metadata.NumDelivered, int.MaxValue) : 1,
        };
        return new Decoded(driverEvent, runId, "");
    }

    /// <summary>Reads a top-level <c>run_id</c> string from JSON that may be broken after it.</summary>
    internal static string? ScanRunId(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        try
        {
            while (reader.Read())
            {
                if (reader.TokenType == JsonTokenType.PropertyName && reader.CurrentDepth == 1
                    && string.Equals(reader.GetString(), "run_id", StringComparison.OrdinalIgnoreCase))
                {
                    if (reader.Read() && reader.TokenType == JsonTokenType.String)
                    {
                        var value = reader.GetString();
                        return string.IsNullOrEmpty(value) ? null : value;
                    }
                }
            }
        }
        catch (JsonException)
        {
            // Broken JSON: whatever was found before the break is all there is.
        }

        return null;
    }

    private static string? Header(NatsHeaders? headers, string name) =>
        headers is not null && headers.TryGetValue(name, out var values) && values.Count > 0 && !string.IsNullOrEmpty(values[0]) ? values[0] : null;
}
