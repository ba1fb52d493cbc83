using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Conveyor.Client;
using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Events;
using Microsoft.AspNetCore.Http;

namespace Conveyor.Api.Http;

/// <summary>
/// Writes run and step transitions as Server-Sent Events from the <c>conveyor-runs</c> stream: what it holds from the
/// resume point, then live ones. Each event's id is <c>{stream sequence}.{index}</c> (a message holds the transitions of
/// one stored decision), so <c>Last-Event-ID</c> resumes right after the last event a client saw — from any silo, since
/// the feed is in JetStream, not in one silo's memory. A transition published twice (a silo that died between
/// publishing and storing that it had) is sent once: each run's transitions are numbered without gaps, and a number
/// already sent is skipped. A heartbeat comment goes out every 15 s; a client too slow to keep up gets
/// <c>event: dropped</c> and is disconnected.
/// </summary>
internal sealed class RunEventStream
{
    /// <summary>Messages buffered for one client before it counts as too slow.</summary>
    public const int BufferSize = 1024;

    private static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web);
    private static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(500);

    /// <summary>The feed.</summary>
    public required RunEventFeed Feed { get; init; }

    /// <summary>Subject filter: one run, a namespace, or one pipeline's runs.</summary>
    public required string Filter { get; init; }

    /// <summary>Where to resume: after this event.</summary>
    public RunEventPosition After { get; init; }

    /// <summary>Only transitions after which the run has this status.</summary>
    public RunStatus? Status { get; init; }

    /// <summary>
    /// The run, for a feed of one run: it ends (<c>event: end</c>) once the run has ended and every transition up to its
    /// end was sent. Null: the feed goes on until the client leaves.
    /// </summary>
    public IPipelineRunGrain? Run { get; init; }

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
        var buffer = Channel.CreateBounded<StoredRunEvents>(new BoundedChannelOptions(BufferSize) { SingleWriter = true, FullMode = BoundedChannelFullMode.Wait });
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(aborted);
        var overflowed = false;
        var reader = Task.Run(
            async () =>
            {
                try
                {
                    await foreach (var stored in Feed.FollowAsync(Filter, After.StreamSequence == 0 ? 1 : After.StreamSequence, stop.Token).ConfigureAwait(false))
                    {
                        if (!buffer.Writer.TryWrite(stored))
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
            var sent = new Dictionary<Guid, long>();
            var nextHeartbeat = time.GetUtcNow() + HeartbeatInterval;
            var last = After;
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
                    var message = stored.Message;
                    for (var i = 0; i < message.Items.Count; i++)
                    {
                        var item = message.Items[i];
                        if (stored.StreamSequence == After.StreamSequence && i <= After.Index)
                        {
                            // Sent before the client reconnected: it resumes after this one.
                            sent[message.RunId] = Math.Max(sent.GetValueOrDefault(message.RunId), item.Sequence);
                            continue;
                        }

                        if (item.Sequence <= sent.GetValueOrDefault(message.RunId))
                        {
                            continue;
                        }

                        sent[message.RunId] = item.Sequence;
                        last = new RunEventPosition(stored.StreamSequence, i);
                        if (Status is { } wanted && item.RunStatus != wanted)
                        {
                            continue;
                        }

                        await response.WriteAsync(Format(last, message, item), aborted).ConfigureAwait(false);
                        wrote = true;
                    }

                    if (Run is not null && stored.Pending == 0 && message.Items.Count > 0 && message.Items[^1].RunStatus.IsTerminal()
                        && (await Run.GetSummaryAsync().ConfigureAwait(false))?.Status.IsTerminal() == true)
                    {
                        var end = JsonSerializer.Serialize(new { status = message.Items[^1].RunStatus.ToString() }, JsonOptions);
                        await response.WriteAsync($"id: {last}\nevent: end\ndata: {end}\n\n", aborted).ConfigureAwait(false);
                        await response.Body.FlushAsync(aborted).ConfigureAwait(false);
                        return;
                    }
                }

                if (wrote)
                {
                    await response.Body.FlushAsync(aborted).ConfigureAwait(false);
                }

                if (!more)
                {
                    // The reader stopped: too slow a client, or the stream failed.
                    if (overflowed)
                    {
                        await response.WriteAsync($"event: dropped\ndata: {{\"after\":\"{last}\"}}\n\n", aborted).ConfigureAwait(false);
                        await response.Body.FlushAsync(aborted).ConfigureAwait(false);
                    }

                    return;
                }

                var now = time.GetUtcNow();
                if (now >= nextHeartbeat)
                {
                    await response.WriteAsync(": heartbeat\n\n", aborted).ConfigureAwait(false);
                    await response.Body.FlushAsync(aborted).ConfigureAwait(false);
                    nextHeartbeat = now + HeartbeatInterval;
                }
            }
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            await reader.ConfigureAwait(false);
        }
    }

    private static string Format(RunEventPosition position, RunEventMessage message, RunEventItem item)
    {
        var dto = new RunEvent
        {
            RunId = message.RunId,
            Namespace = message.Namespace,
            Pipeline = message.Pipeline,
            Sequence = item.Sequence,
            At = item.At,
            Step = item.Step,
            Status = item.Status,
            Previous = item.Previous,
            Attempt = item.Attempt,
            Message = item.Message,
            RunStatus = item.RunStatus,
        };
        var builder = new StringBuilder(256);
        builder.Append("id: ").Append(position.ToString()).Append("\nevent: ").Append(item.Step is null ? "run" : "step").Append("\ndata: ");
        builder.Append(JsonSerializer.Serialize(dto, JsonOptions)).Append("\n\n");
        return builder.ToString();
    }
}

/// <summary>A position in the run events feed: a message's stream sequence and an item's index in it.</summary>
/// <param name="StreamSequence">The message's JetStream stream sequence (0: before the first).</param>
/// <param name="Index">The item's index in the message.</param>
internal readonly record struct RunEventPosition(ulong StreamSequence, int Index)
{
    /// <summary>The SSE id: <c>{stream sequence}.{index}</c>.</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{StreamSequence}.{Index}");

    /// <summary>Parses an SSE id (<c>12.3</c>); false for anything else.</summary>
    public static bool TryParse(string? text, out RunEventPosition position)
    {
        position = default;
        if (string.IsNullOrEmpty(text) || text.Length > 40)
        {
            return false;
        }

        var dot = text.IndexOf('.', StringComparison.Ordinal);
        if (dot <= 0
            || !ulong.TryParse(text.AsSpan(0, dot), NumberStyles.None, CultureInfo.InvariantCulture, out var sequence)
            || !int.TryParse(text.AsSpan(dot + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var index))
        {
            return false;
        }

        position = new RunEventPosition(sequence, index);
        return true;
    }
}
