using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text.Json;
using Conveyor.Contracts;
using Conveyor.Grains.Nats;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;
using Orleans.Runtime;

namespace Conveyor.Grains.Logs;

/// <summary>
/// Moves driver log entries from the original's <c>logs-engine</c> work queue (<c>logs.&gt;</c>) into the
/// <c>conveyor-logs</c> store (<c>conveyor.logs.{runid}</c>), normalized: <c>run_id</c> read as <c>runid</c>, the run id
/// taken from the subject when the body has none, oversized messages truncated. It runs on a durable consumer shared by
/// every silo; a message is acked only after the store has acknowledged its copy, and the copy carries
/// <c>Nats-Msg-Id: logs-engine:{sequence}</c> so a redelivery is stored once. Malformed entries are counted, logged and
/// acked, never redelivered; labels are capped (64, 1 KiB each) so a normalized entry always fits a NATS message, and an
/// entry the store still refuses after 20 deliveries is dropped the same way.
/// </summary>
internal sealed partial class LogIngestor(
    INatsConnection connection,
    IOptions<ConveyorNatsOptions> options,
    ILogger<LogIngestor> logger) : DurableConsumerService(connection, logger)
{
    private static readonly Meter Meter = new("Conveyor.Logs");
    private static readonly Counter<long> MalformedCounter = Meter.CreateCounter<long>("conveyor.logs.malformed", description: "Log entries dropped because they are not JSON objects");
    private static readonly Counter<long> IngestedCounter = Meter.CreateCounter<long>("conveyor.logs.ingested", description: "Log entries copied into the log store");
    private const int MaxLabels = 64;
    private const int MaxLabelBytes = 1024;
    private const ulong MaxDeliveries = 20;
    private const int MaxInFlight = 512;
    private readonly ConveyorNatsOptions _options = options.Value;
    private long _malformed;
    private long _ingested;

    /// <summary>Entries this silo dropped because they were not JSON objects.</summary>
    public long MalformedCount => Interlocked.Read(ref _malformed);

    /// <summary>Entries this silo copied into the store.</summary>
    public long IngestedCount => Interlocked.Read(ref _ingested);

    /// <inheritdoc />
    protected override string StreamName => Subjects.LogsEngineStream;

    /// <inheritdoc />
    protected override ConsumerConfig CreateConsumerConfig() => new(_options.LogConsumerName)
    {
        DurableName = _options.LogConsumerName,
        FilterSubject = Subjects.LogsWildcard,
        AckPolicy = ConsumerConfigAckPolicy.Explicit,
        DeliverPolicy = ConsumerConfigDeliverPolicy.All,
        AckWait = TimeSpan.FromSeconds(30),
        MaxAckPending = MaxInFlight * 2,
        NumReplicas = _options.Replicas,
    };

    /// <summary>
    /// Stores entries concurrently across (run, driver, step) — a step's lines one after the other, each only after
    /// the previous one is stored, so their order is kept — with at most <see cref="MaxInFlight"/> stores under way.
    /// One store round trip at a time capped ingestion at a few thousand lines/s, however many steps were logging.
    /// </summary>
    protected override async Task ConsumeAsync(NatsJSContext js, INatsJSConsumer consumer, CancellationToken cancellationToken)
    {
        using var window = new SemaphoreSlim(MaxInFlight);
        var chains = new Dictionary<string, Task>(StringComparer.Ordinal);
        try
        {
            await foreach (var msg in consumer.ConsumeAsync<byte[]>(opts: ConsumeOpts(MaxInFlight), cancellationToken: cancellationToken).ConfigureAwait(false))
            {
                var entry = msg.Data is { Length: > 0 } data ? LogEntryParser.Parse(data) : null;
                if (entry is null)
                {
                    Interlocked.Increment(ref _malformed);
                    MalformedCounter.Add(1);
                    LogMalformed(logger, msg.Subject, msg.Data?.Length ?? 0);
                    await AckAsync(msg).ConfigureAwait(false);
                    continue;
                }

                await window.WaitAsync(cancellationToken).ConfigureAwait(false);
                var key = $"{entry.RunId}\n{entry.Driver}\n{(entry.Labels is { } l && l.TryGetValue("step", out var step) ? step : "")}\n{msg.Subject}";
                chains.TryGetValue(key, out var previous);
                chains[key] = StoreAfterAsync(previous, js, msg, entry, window, cancellationToken);
                if (chains.Count > MaxInFlight * 4)
                {
                    foreach (var done in chains.Where(c => c.Value.IsCompleted).Select(c => c.Key).ToList())
                    {
                        chains.Remove(done);
                    }
                }
            }
        }
        finally
        {
            // Drain: finish what was taken so nothing is left half-stored.
            await Task.WhenAll(chains.Values).ConfigureAwait(false);
        }
    }

    private async Task StoreAfterAsync(Task? previous, NatsJSContext js, INatsJSMsg<byte[]> msg, LogEntry entry, SemaphoreSlim window, CancellationToken cancellationToken)
    {
        try
        {
            if (previous is not null)
            {
                // Only the order matters here; the previous store reports its own failures.
                await previous.ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default).ConfigureAwait(false);
            }

            await StoreAsync(js, msg, entry, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Shutting down: the unacked entry is redelivered to another silo.
        }
        finally
        {
            window.Release();
        }
    }

    private async Task StoreAsync(NatsJSContext js, INatsJSMsg<byte[]> msg, LogEntry entry, CancellationToken cancellationToken)
    {
        var fromSubject = msg.Subject.Length > Subjects.LogsWildcard.Length - 1 ? msg.Subject[(Subjects.LogsWildcard.Length - 1)..] : "";
        var runId = LogEntryParser.IsValidRunId(entry.RunId) ? entry.RunId : fromSubject;
        entry = entry with
        {
            RunId = runId,
            Message = LogEntryParser.Truncate(entry.Message, _options.MaxLogEntryBytes),
            Labels = entry.Labels?.Take(MaxLabels).ToDictionary(l => LogEntryParser.Truncate(l.Key, MaxLabelBytes), l => LogEntryParser.Truncate(l.Value, MaxLabelBytes), StringComparer.Ordinal),
        };
        var sequence = msg.Metadata?.Sequence.Stream ?? 0;
        try
        {
            var ack = await js.PublishAsync(
                Subjects.LogStore(runId),
                JsonSerializer.SerializeToUtf8Bytes(entry, ConveyorJson.Context.LogEntry),
                opts: new NatsJSPubOpts { MsgId = sequence > 0 ? "logs-engine:" + sequence.ToString(CultureInfo.InvariantCulture) : null },
                cancellationToken: cancellationToken).ConfigureAwait(false);
            ack.EnsureSuccess();
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception ex)
        {
            if (msg.Metadata?.NumDelivered >= MaxDeliveries)
            {
                // Not a passing outage: this entry cannot be stored. Drop it rather than retry it forever.
                Interlocked.Increment(ref _malformed);
                MalformedCounter.Add(1);
                LogDropped(logger, ex, runId, MaxDeliveries);
                await AckAsync(msg).ConfigureAwait(false);
                return;
            }

            // The store is unavailable: leave the entry in the work queue and try again shortly.
            LogStoreFailed(logger, ex, runId);
            try
            {
                await msg.NakAsync(new AckOpts { NakDelay = TimeSpan.FromSeconds(1) }, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception nakFailure) when (nakFailure is not OperationCanceledException)
            {
                LogAckFailed(logger, nakFailure, msg.Subject);
            }

            return;
        }

        Interlocked.Increment(ref _ingested);
        IngestedCounter.Add(1);
        await AckAsync(msg).ConfigureAwait(false);
    }

    private async Task AckAsync(INatsJSMsg<byte[]> msg)
    {
        try
        {
            await msg.AckAsync().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // A lost ack means a redelivery, which the store's de-duplication absorbs.
            LogAckFailed(logger, ex, msg.Subject);
        }
    }


    [LoggerMessage(Level = LogLevel.Warning, Message = "Malformed log entry on {Subject} ({Bytes} bytes) acked and dropped")]
    private static partial void LogMalformed(ILogger logger, string subject, int bytes);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Storing a log entry of run {RunId} failed; it will be redelivered")]
    private static partial void LogStoreFailed(ILogger logger, Exception exception, string runId);

    [LoggerMessage(Level = LogLevel.Error, Message = "A log entry of run {RunId} could not be stored after {Attempts} attempts; acked and dropped")]
    private static partial void LogDropped(ILogger logger, Exception exception, string runId, ulong attempts);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Acknowledging a log entry on {Subject} failed")]
    private static partial void LogAckFailed(ILogger logger, Exception exception, string subject);
}
