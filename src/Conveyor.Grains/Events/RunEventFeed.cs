using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Serialization;
using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Nats;
using Conveyor.Nats;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Conveyor.Grains.Events;

/// <summary>One message of the run events stream: the transitions one stored decision of a run made.</summary>
internal sealed record RunEventMessage
{
    /// <summary>Run id.</summary>
    [JsonPropertyName("runId")] public Guid RunId { get; init; }

    /// <summary>Namespace.</summary>
    [JsonPropertyName("namespace")] public string Namespace { get; init; } = "";

    /// <summary>Pipeline.</summary>
    [JsonPropertyName("pipeline")] public string Pipeline { get; init; } = "";

    /// <summary>The transitions, in order; their sequences follow on without a gap.</summary>
    [JsonPropertyName("items")] public IReadOnlyList<RunEventItem> Items { get; init; } = [];
}

/// <summary>One run or step transition.</summary>
internal sealed record RunEventItem
{
    /// <summary>The run's transition number (1-based, gap-free per run).</summary>
    [JsonPropertyName("sequence")] public long Sequence { get; init; }

    /// <summary>When it happened.</summary>
    [JsonPropertyName("at")] public DateTimeOffset At { get; init; }

    /// <summary>The step (or matrix instance, <c>build[0]</c>) that changed; null when the run changed.</summary>
    [JsonPropertyName("step")] public string? Step { get; init; }

    /// <summary>The new status.</summary>
    [JsonPropertyName("status")] public string Status { get; init; } = "";

    /// <summary>The previous status.</summary>
    [JsonPropertyName("previous")] public string? Previous { get; init; }

    /// <summary>The step's attempt (0 for the run).</summary>
    [JsonPropertyName("attempt")] public int Attempt { get; init; }

    /// <summary>Why (an attempt's message, a skip's reason, the run's end), when there is something to say.</summary>
    [JsonPropertyName("message")] public string? Message { get; init; }

    /// <summary>The run's status after the change.</summary>
    [JsonPropertyName("runStatus")] public RunStatus RunStatus { get; init; }

    internal static RunEventItem From(RunTransition t) => new()
    {
        Sequence = t.Sequence,
        At = t.At,
        Step = t.Step,
        Status = t.Status,
        Previous = t.Previous,
        Attempt = t.Attempt,
        Message = t.Message,
        RunStatus = t.RunStatus,
    };
}

/// <summary>A message read back from the stream, with where it is.</summary>
/// <param name="StreamSequence">Its JetStream stream sequence: the position a reader resumes from.</param>
/// <param name="Message">The message.</param>
/// <param name="Pending">Messages of the reader's filter after this one, when it was delivered (0: the reader is caught up).</param>
internal readonly record struct StoredRunEvents(ulong StreamSequence, RunEventMessage Message, ulong Pending);

/// <summary>
/// The run events feed in JetStream: runs publish each stored decision's transitions as one message on
/// <see cref="Subjects.RunEvents"/> (<c>Nats-Msg-Id</c> = run id and first transition number, so a re-publish after a
/// crash is stored once); readers follow a run or a namespace from any stream sequence, which is how a client resumes.
/// </summary>
internal sealed partial class RunEventFeed(DriverDispatcher dispatcher, JetStreamPublisher publisher, IOptions<RunEventsOptions> options, IOptions<ConveyorNatsOptions> natsOptions, ILogger<RunEventFeed> logger)
{
    internal static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { Converters = { new JsonStringEnumConverter() } };
    private static readonly TimeSpan InactiveThreshold = TimeSpan.FromMinutes(1);

    /// <summary>Options in force.</summary>
    public RunEventsOptions Options { get; } = options.Value;

    /// <summary>Publishes a run's batches in order; throws when JetStream did not store all of them.</summary>
    public async Task PublishAsync(RunState run, IReadOnlyList<RunEventBatch> batches, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(run);
        ArgumentNullException.ThrowIfNull(batches);
        if (batches.Count == 0)
        {
            return;
        }

        var subject = Subjects.RunEvents(run.Plan.Namespace, run.Plan.Pipeline.Name, run.RunId);
        var acks = new Task[batches.Count];
        for (var i = 0; i < batches.Count; i++)
        {
            var body = ToUtf8(run.RunId, run.Plan.Namespace, run.Plan.Pipeline.Name, batches[i].Items);
            acks[i] = PublishOneAsync(subject, $"{run.RunId:D}:{batches[i].First}", body, cancellationToken);
        }

        await Task.WhenAll(acks).ConfigureAwait(false);
    }

    /// <summary>
    /// The message's JSON: what <see cref="JsonSerializer"/> writes for the <see cref="RunEventMessage"/> of these
    /// transitions with the feed's options (the readers decode it so), written directly: through the reflection
    /// serializer, with a copy of every item first, it was 2.6% of the silo's allocation per step.
    /// </summary>
    internal static byte[] ToUtf8(Guid runId, string ns, string pipeline, IReadOnlyList<RunTransition> items) =>
        ThreadJsonWriter.Write((runId, ns, pipeline, items), static (w, m) =>
        {
            w.WriteStartObject();
            w.WriteString("runId", m.runId);
            w.WriteString("namespace", m.ns);
            w.WriteString("pipeline", m.pipeline);
            w.WriteStartArray("items");
            foreach (var t in m.items)
            {
                w.WriteStartObject();
                w.WriteNumber("sequence", t.Sequence);
                w.WriteString("at", t.At);
                w.WriteString("step", t.Step);
                w.WriteString("status", t.Status);
                w.WriteString("previous", t.Previous);
                w.WriteNumber("attempt", t.Attempt);
                w.WriteString("message", t.Message);
                // As JsonStringEnumConverter writes it: the member's name (cached by the runtime, not formatted per call).
                w.WriteString("runStatus", t.RunStatus.ToString());
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }).ToArray();

    private Task<PublishAck> PublishOneAsync(string subject, string id, byte[] body, CancellationToken cancellationToken) =>
        publisher.PublishAsync(subject, body, new NatsHeaders { [Headers.MessageId] = id }, cancellationToken);

    /// <summary>
    /// The messages on <paramref name="filter"/> from stream sequence <paramref name="from"/> on (1: from the start of
    /// what the stream keeps), then live ones as they come, until cancelled.
    /// </summary>
    public async IAsyncEnumerable<StoredRunEvents> FollowAsync(string filter, ulong from, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(filter);
        // An ephemeral consumer (a name but no durable): the server removes it when unused, even if we never get to.
        var config = new ConsumerConfig("runs-read-" + Guid.NewGuid().ToString("N"))
        {
            FilterSubject = filter,
            DeliverPolicy = ConsumerConfigDeliverPolicy.ByStartSequence,
            OptStartSeq = Math.Max(1, from),
            AckPolicy = ConsumerConfigAckPolicy.None,
            InactiveThreshold = InactiveThreshold,
            MemStorage = true,
            NumReplicas = 1,
        };
        var js = dispatcher.JetStream;
        var consumer = await js.CreateOrUpdateConsumerAsync(Subjects.RunEventsStream, config, cancellationToken).ConfigureAwait(false);
        try
        {
            await foreach (var msg in consumer.ConsumeAsync<byte[]>(opts: new NatsJSConsumeOpts { MaxMsgs = 256 }, cancellationToken: cancellationToken).ConfigureAwait(false))
            {
                if (msg.Metadata is { } metadata && Decode(msg.Data) is { } message)
                {
                    yield return new StoredRunEvents(metadata.Sequence.Stream, message, metadata.NumPending);
                }
            }
        }
        finally
        {
            try
            {
                await js.DeleteConsumerAsync(Subjects.RunEventsStream, consumer.Info.Name, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is NatsJSException or NatsException or OperationCanceledException)
            {
                LogReaderNotDeleted(logger, ex, consumer.Info.Name);
            }
        }
    }

    /// <summary>Creates (or updates) the <c>conveyor-runs</c> stream.</summary>
    public async Task EnsureStreamAsync(CancellationToken cancellationToken = default)
    {
        var retention = Options.Retention;
        await dispatcher.JetStream.CreateOrUpdateStreamAsync(
            new StreamConfig(Subjects.RunEventsStream, [Subjects.RunEventsWildcard])
            {
                Retention = StreamConfigRetention.Limits,
                Storage = StreamConfigStorage.File,
                MaxAge = retention,
                MaxBytes = Options.MaxBytes > 0 ? Options.MaxBytes : -1,
                // JetStream refuses a de-duplication window longer than the stream's max age.
                DuplicateWindow = Options.DuplicateWindow < retention ? Options.DuplicateWindow : retention,
                // As many copies as the engine's own streams (Conveyor:Nats:Replicas): a resumed feed survives a node's loss.
                NumReplicas = natsOptions.Value.Replicas,
            },
            cancellationToken).ConfigureAwait(false);
        LogStreamReady(logger, Subjects.RunEventsStream);
    }

    private static RunEventMessage? Decode(byte[]? data)
    {
        if (data is not { Length: > 0 })
        {
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize<RunEventMessage>(data, Json);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Run events reader consumer {Consumer} not deleted; the server expires it")]
    private static partial void LogReaderNotDeleted(ILogger logger, Exception exception, string consumer);

    [LoggerMessage(Level = LogLevel.Information, Message = "JetStream stream {Stream} ready")]
    private static partial void LogStreamReady(ILogger logger, string stream);
}
