using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Conveyor.Client;
using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Logs;
using Microsoft.AspNetCore.Http;

namespace Conveyor.Api.Http;

/// <summary>
/// Writes a run's log as Server-Sent Events: stored entries, then live ones from the same store consumer (no gap, no
/// duplicate), a heartbeat comment every 15 s. Entries pass through a bounded buffer; a client too slow to keep up
/// gets <c>event: dropped</c> and is disconnected, so a reader never holds anything up but itself.
/// </summary>
internal sealed class LogEventStream
{
    /// <summary>Entries buffered for one client before it counts as too slow.</summary>
    public const int BufferSize = 4096;

    private static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web);
    private static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan Quiet = TimeSpan.FromSeconds(1);

    /// <summary>Store to follow.</summary>
    public required ILogStore Store { get; init; }

    /// <summary>Run whose entries are streamed.</summary>
    public required string RunId { get; init; }

    /// <summary>Stream entries with a greater sequence only.</summary>
    public ulong After { get; init; }

    /// <summary>Only this driver's entries.</summary>
    public string? Driver { get; init; }

    /// <summary>
    /// The run, when it exists as one: the stream ends (<c>event: end</c>) once it has finished and its log has been
    /// quiet for a second. Without it the stream ends only when the client leaves.
    /// </summary>
    public IPipelineRunGrain? Run { get; init; }

    /// <summary>
    /// Conveyor framing (<c>id:</c>, <c>event: log|end|dropped</c>, items with <c>seq</c> and <c>labels</c>) rather
    /// than the original's bare <c>data: &lt;log json&gt;</c>.
    /// </summary>
    public bool Extended { get; init; }

    /// <summary>Heartbeat period.</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Writes the stream to <paramref name="http"/> until it ends or the client leaves.</summary>
    public Task WriteAsync(HttpContext http, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(time);
        return ServerSentEvents.ServeAsync(http, (response, aborted) => PumpAsync(response, time, aborted));
    }

    private async Task PumpAsync(HttpResponse response, TimeProvider time, CancellationToken aborted)
    {
        var buffer = Channel.CreateBounded<StoredLogEntry>(new BoundedChannelOptions(BufferSize) { SingleWriter = true, FullMode = BoundedChannelFullMode.Wait });
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(aborted);
        var overflowed = false;
        var reader = Task.Run(
            async () =>
            {
                try
                {
                    await foreach (var stored in Store.FollowAsync(RunId, After, stop.Token).ConfigureAwait(false))
                    {
                        if (stored.Matches(Driver, null) && !buffer.Writer.TryWrite(stored))
                        {
                            overflowed = true;
                            break;
                        }
                    }

                    buffer.Writer.TryComplete();
                }
                catch (Exception ex)
                {
                    buffer.Writer.TryComplete(ex is OperationCanceledException ? null : ex);
                }
            },
            CancellationToken.None);

        try
        {
            var now = time.GetUtcNow();
            var lastEntryAt = now;
            var nextHeartbeat = now + HeartbeatInterval;
            var nextPoll = now;
            DateTimeOffset? finishedSeenAt = null;
            RunStatus? finalStatus = null;
            ulong lastSeq = After;
            while (true)
            {
                bool more;
                using (var tick = CancellationTokenSource.CreateLinkedTokenSource(aborted))
                {
                    tick.CancelAfter(Tick);
                    try
                    {
                        more = await buffer.Reader.WaitToReadAsync(tick.Token).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException) when (!aborted.IsCancellationRequested)
                    {
                        more = true;
                    }
                }

                var wrote = false;
                while (buffer.Reader.TryRead(out var stored))
                {
                    await response.WriteAsync(Format(stored), aborted).ConfigureAwait(false);
                    lastSeq = stored.Sequence;
                    wrote = true;
                }

                now = time.GetUtcNow();
                if (wrote)
                {
                    lastEntryAt = now;
                    await response.Body.FlushAsync(aborted).ConfigureAwait(false);
                }

                if (!more)
                {
                    // The follower stopped: too slow a client, or the store failed.
                    if (Extended && overflowed)
                    {
                        await response.WriteAsync($"event: dropped\ndata: {{\"after\":\"{lastSeq}\"}}\n\n", aborted).ConfigureAwait(false);
                        await response.Body.FlushAsync(aborted).ConfigureAwait(false);
                    }

                    return;
                }

                if (now >= nextHeartbeat)
                {
                    await response.WriteAsync(": heartbeat\n\n", aborted).ConfigureAwait(false);
                    await response.Body.FlushAsync(aborted).ConfigureAwait(false);
                    nextHeartbeat = now + HeartbeatInterval;
                }

                if (Extended && Run is not null && now >= nextPoll)
                {
                    nextPoll = now + Tick;
                    if (finishedSeenAt is null && await Run.GetSummaryAsync().ConfigureAwait(false) is { } summary && summary.Status.IsTerminal())
                    {
                        finishedSeenAt = now;
                        finalStatus = summary.Status;
                    }

                    if (finishedSeenAt is { } seen && now - seen >= Quiet && now - lastEntryAt >= Quiet)
                    {
                        var end = JsonSerializer.Serialize(new LogEnd { Status = finalStatus.GetValueOrDefault() }, JsonOptions);
                        await response.WriteAsync($"event: end\ndata: {end}\n\n", aborted).ConfigureAwait(false);
                        await response.Body.FlushAsync(aborted).ConfigureAwait(false);
                        return;
                    }
                }
            }
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            await reader.ConfigureAwait(false);
        }
    }

    private string Format(StoredLogEntry stored)
    {
        if (!Extended)
        {
            return "data: " + JsonSerializer.Serialize(stored.Entry, ConveyorJson.Context.LogEntry) + "\n\n";
        }

        var builder = new StringBuilder(256);
        builder.Append("id: ").Append(stored.Sequence).Append("\nevent: log\ndata: ");
        builder.Append(JsonSerializer.Serialize(ApiMapping.ToLogLine(stored), JsonOptions)).Append("\n\n");
        return builder.ToString();
    }
}
