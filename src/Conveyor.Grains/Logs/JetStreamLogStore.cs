using System.Runtime.CompilerServices;
using System.Text.Json;
using Conveyor.Contracts;
using Microsoft.Extensions.Logging;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Conveyor.Grains.Logs;

/// <summary>
/// <see cref="ILogStore"/> on the <c>conveyor-logs</c> stream (one subject per run). Every read uses its own
/// short-lived consumer filtered on the run's subject and starting at the cursor, so a page costs the same however
/// many entries the run or the stream holds; following continues the same consumer into live entries, so history and
/// live output meet with no gap and no duplicate.
/// </summary>
internal sealed partial class JetStreamLogStore(INatsConnection connection, ILogger<JetStreamLogStore> logger) : ILogStore
{
    private const int FetchBatch = 256;
    private static readonly TimeSpan InactiveThreshold = TimeSpan.FromSeconds(30);

    // The page size comes from the consumer's pending count, which entries expiring meanwhile (retention) can make
    // stale; a pull then waits for its expiry instead of answering "no messages", and the client default is 30 s.
    private static readonly TimeSpan FetchExpiry = TimeSpan.FromSeconds(1);
    private readonly NatsJSContext _js = new(connection);

    /// <inheritdoc />
    public async Task<LogPage> ReadAsync(string runId, LogQuery query, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(runId);
        ArgumentNullException.ThrowIfNull(query);
        var limit = Math.Max(1, query.Limit);
        var filtered = !string.IsNullOrEmpty(query.Driver) || !string.IsNullOrEmpty(query.Step);

        // A filtered page scans at most this many entries, so its cost stays bounded even when few entries match;
        // the cursor then points past what was scanned.
        var budget = filtered ? Math.Max(limit * 10, 1000) : limit;
        var consumer = await CreateReaderAsync(runId, query.After, cancellationToken).ConfigureAwait(false);
        try
        {
            var remaining = consumer.Info.NumPending;
            var items = new List<StoredLogEntry>(Math.Min(limit, (int)Math.Min(remaining, 1000)));
            var last = query.After;
            var scanned = 0;
            while (items.Count < limit && remaining > 0 && scanned < budget)
            {
                var batch = (int)Math.Min(remaining, (ulong)Math.Min(FetchBatch, filtered ? budget - scanned : limit - items.Count));
                var received = 0;
                await foreach (var msg in consumer.FetchNoWaitAsync<byte[]>(new NatsJSFetchOpts { MaxMsgs = batch, Expires = FetchExpiry }, cancellationToken: cancellationToken).ConfigureAwait(false))
                {
                    if (items.Count >= limit || msg.Metadata is not { } metadata)
                    {
                        continue;
                    }

                    received++;
                    scanned++;
                    last = metadata.Sequence.Stream;
                    remaining = metadata.NumPending;
                    if (Decode(msg.Data) is { } entry)
                    {
                        var stored = new StoredLogEntry(last, entry);
                        if (stored.Matches(query.Driver, query.Step))
                        {
                            items.Add(stored);
                        }
                    }
                }

                if (received == 0)
                {
                    break;
                }
            }

            return new LogPage(items, remaining > 0 ? last : null);
        }
        finally
        {
            await DeleteReaderAsync(consumer).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<StoredLogEntry> FollowAsync(string runId, ulong after = 0, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(runId);
        var consumer = await CreateReaderAsync(runId, after, cancellationToken).ConfigureAwait(false);
        try
        {
            await foreach (var msg in consumer.ConsumeAsync<byte[]>(opts: new NatsJSConsumeOpts { MaxMsgs = FetchBatch }, cancellationToken: cancellationToken).ConfigureAwait(false))
            {
                if (msg.Metadata is { } metadata && Decode(msg.Data) is { } entry)
                {
                    yield return new StoredLogEntry(metadata.Sequence.Stream, entry);
                }
            }
        }
        finally
        {
            await DeleteReaderAsync(consumer).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public async Task PurgeAsync(string runId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(runId);
        // Both the store and the original's work queue (entries not ingested yet) hold the run's lines under its subject.
        await _js.PurgeStreamAsync(Subjects.LogStoreStream, new StreamPurgeRequest { Filter = Subjects.LogStore(runId) }, cancellationToken).ConfigureAwait(false);
        await _js.PurgeStreamAsync(Subjects.LogsEngineStream, new StreamPurgeRequest { Filter = Subjects.Logs(runId) }, cancellationToken).ConfigureAwait(false);
    }

    private async Task<INatsJSConsumer> CreateReaderAsync(string runId, ulong after, CancellationToken cancellationToken)
    {
        // An ephemeral consumer (a name but no durable): the server removes it when unused, even if we never get to.
        var config = new ConsumerConfig("logs-read-" + Guid.NewGuid().ToString("N"))
        {
            FilterSubject = Subjects.LogStore(runId),
            DeliverPolicy = ConsumerConfigDeliverPolicy.ByStartSequence,
            OptStartSeq = after + 1,
            AckPolicy = ConsumerConfigAckPolicy.None,
            InactiveThreshold = InactiveThreshold,
            MemStorage = true,
            NumReplicas = 1,
        };
        return await _js.CreateOrUpdateConsumerAsync(Subjects.LogStoreStream, config, cancellationToken).ConfigureAwait(false);
    }

    private async Task DeleteReaderAsync(INatsJSConsumer consumer)
    {
        try
        {
            await _js.DeleteConsumerAsync(Subjects.LogStoreStream, consumer.Info.Name, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is NatsJSException or NatsException or OperationCanceledException)
        {
            // The server drops it anyway once it has been inactive for InactiveThreshold.
            LogReaderNotDeleted(logger, ex, consumer.Info.Name);
        }
    }

    private static LogEntry? Decode(byte[]? data)
    {
        if (data is not { Length: > 0 })
        {
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize(data, ConveyorJson.Context.LogEntry);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Log reader consumer {Consumer} not deleted; the server expires it")]
    private static partial void LogReaderNotDeleted(ILogger logger, Exception exception, string consumer);
}
