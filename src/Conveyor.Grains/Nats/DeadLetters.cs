using System.Diagnostics.Metrics;
using System.Globalization;
using Conveyor.Contracts;
using Microsoft.Extensions.Logging;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Conveyor.Grains.Nats;

/// <summary>
/// Moves a message the engine gave up on to the dead-letter subject, body and headers intact, with headers saying why,
/// from where and after how many deliveries; counted on <c>conveyor.deadletter.messages</c>. The copy is de-duplicated
/// by the original's stream sequence, so a retried move stores it once.
/// </summary>
internal sealed partial class DeadLetters(INatsConnection connection, ILogger<DeadLetters> logger)
{
    /// <summary>Why (header of a dead letter).</summary>
    public const string ReasonHeader = "Conveyor-Dead-Letter-Reason";

    /// <summary>The stream the message came from.</summary>
    public const string StreamHeader = "Conveyor-Dead-Letter-Stream";

    /// <summary>Its sequence there.</summary>
    public const string SequenceHeader = "Conveyor-Dead-Letter-Sequence";

    /// <summary>Its subject there.</summary>
    public const string SubjectHeader = "Conveyor-Dead-Letter-Subject";

    /// <summary>How many times it was delivered.</summary>
    public const string DeliveriesHeader = "Conveyor-Dead-Letter-Deliveries";

    private static readonly Meter Meter = new("Conveyor.DeadLetters");
    private static readonly Counter<long> Counter = Meter.CreateCounter<long>("conveyor.deadletter.messages", description: "Messages moved to the dead-letter stream, by source stream and reason");
    private readonly NatsJSContext _js = new(connection);

    /// <summary>Stores the dead letter; throws when JetStream did not (the caller leaves the original in place then).</summary>
    public async Task MoveAsync(string stream, ulong sequence, string subject, byte[]? data, NatsHeaders? original, ulong deliveries, string kind, string reason, CancellationToken cancellationToken = default)
    {
        var headers = new NatsHeaders();
        if (original is not null)
        {
            foreach (var (name, values) in original)
            {
                if (!name.StartsWith("Nats-", StringComparison.Ordinal))
                {
                    headers[name] = values;
                }
            }
        }

        headers[ReasonHeader] = reason.Length > 1024 ? reason[..1024] : reason;
        headers[StreamHeader] = stream;
        headers[SequenceHeader] = sequence.ToString(CultureInfo.InvariantCulture);
        headers[SubjectHeader] = subject;
        headers[DeliveriesHeader] = deliveries.ToString(CultureInfo.InvariantCulture);
        var ack = await _js.PublishAsync(
            Subjects.DeadLetterResults,
            data ?? [],
            headers: headers,
            opts: new NatsJSPubOpts { MsgId = $"deadletter:{stream}:{sequence}" },
            cancellationToken: cancellationToken).ConfigureAwait(false);
        ack.EnsureSuccess();
        Counter.Add(1, new KeyValuePair<string, object?>("stream", stream), new KeyValuePair<string, object?>("reason", kind));
        LogDeadLettered(logger, stream, sequence, subject, deliveries, reason);
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Message {Sequence} of stream {Stream} ({Subject}) moved to the dead letters after {Deliveries} deliveries: {Reason}")]
    private static partial void LogDeadLettered(ILogger logger, string stream, ulong sequence, string subject, ulong deliveries, string reason);
}
