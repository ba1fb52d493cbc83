using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Conveyor.Contracts;

namespace Conveyor.Client;

/// <content>Run logs: pages and live follow.</content>
public sealed partial class ConveyorClient
{
    /// <summary><c>GET /runs/{id}/logs</c>: one page of a run's log, oldest first.</summary>
    /// <param name="runId">The run.</param>
    /// <param name="driver">Only this driver's entries.</param>
    /// <param name="step">Only entries labelled with this step.</param>
    /// <param name="after"><see cref="LogPage.NextCursor"/> of the previous page (or a <see cref="LogLine.Seq"/>).</param>
    /// <param name="limit">Page size, 1–1000 (server default 100).</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    public Task<LogPage> GetRunLogsAsync(string runId, string? driver = null, string? step = null, string? after = null, int? limit = null, CancellationToken cancellationToken = default)
    {
        var query = new List<string>();
        if (!string.IsNullOrEmpty(driver))
        {
            query.Add("driver=" + Uri.EscapeDataString(driver));
        }

        if (!string.IsNullOrEmpty(step))
        {
            query.Add("step=" + Uri.EscapeDataString(step));
        }

        if (!string.IsNullOrEmpty(after))
        {
            query.Add("after=" + Uri.EscapeDataString(after));
        }

        if (limit is { } l)
        {
            query.Add("limit=" + l.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        var path = $"runs/{Segment(runId)}/logs" + (query.Count == 0 ? "" : "?" + string.Join('&', query));
        return SendAsync<object, LogPage>(HttpMethod.Get, path, null, null, ClientJsonContext.Default.LogPage, cancellationToken);
    }

    /// <summary>
    /// <c>GET /runs/{id}/logs/stream</c>: the run's log entries after <paramref name="after"/>, stored ones first, then
    /// live ones as drivers write them; the sequence ends when the run has finished (the server's <c>end</c> event).
    /// When the stream breaks before that — the server closed it (a silo draining), the connection dropped, nothing
    /// arrived for <see cref="StreamIdleTimeout"/>, or the server dropped this reader for falling behind — the client
    /// reconnects with <c>Last-Event-ID</c> set to the last entry it yielded, so nothing is lost or repeated.
    /// </summary>
    /// <exception cref="ConveyorApiException">The run does not exist, or the server refused the request.</exception>
    /// <exception cref="ConveyorStreamInterruptedException">
    /// The stream broke and <see cref="StreamResumeAttempts"/> reconnects in a row yielded nothing.
    /// </exception>
    public async IAsyncEnumerable<LogLine> FollowRunLogsAsync(
        string runId,
        ulong? after = null,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var path = $"runs/{Segment(runId)}/logs/stream";
        var last = after;
        var failures = 0;
        string? why = null; // why the open stream ended: what the message reports, not the reconnects' failures
        Exception? cause = null;
        while (true)
        {
            // The first connection fails as any request does; only a stream that was open is resumed.
            var connection = why is null
                ? await OpenEventStreamAsync(path, last, cancellationToken).ConfigureAwait(false)
                : await TryOpenEventStreamAsync(path, last, cancellationToken).ConfigureAwait(false);
            if (connection.Stream is { } events)
            {
                using (events)
                {
                    while (true)
                    {
                        var read = await events.ReadAsync(StreamIdleTimeout, _timeProvider, cancellationToken).ConfigureAwait(false);
                        if (read.Event is not { } e)
                        {
                            (why, cause) = (read.Failure, read.Cause);
                            break;
                        }

                        if (e.Name is "log" or "message" && e.Data.Length > 0)
                        {
                            var line = JsonSerializer.Deserialize(e.Data, ClientJsonContext.Default.LogLine)
                                ?? throw new ConveyorApiException("The Conveyor API sent an empty log event.");
                            last = line.Seq;
                            failures = 0;
                            yield return line;
                        }
                        else if (e.Name == "end")
                        {
                            yield break;
                        }
                        else if (e.Name == "dropped")
                        {
                            // The server's buffer for this reader overflowed; it asks readers to resume from their last id.
                            (why, cause) = ("the server dropped this reader for falling behind", null);
                            break;
                        }
                    }
                }
            }
            else
            {
                cause = connection.Cause ?? new IOException(connection.Failure);
            }

            if (++failures > StreamResumeAttempts)
            {
                var position = last is { } seq ? $"after line {seq.ToString(CultureInfo.InvariantCulture)}" : "before its first line";
                throw new ConveyorStreamInterruptedException(
                    $"The log stream of run {runId} ended {position} before the run did ({why}), and {StreamResumeAttempts} attempts to resume it failed.",
                    cause ?? new IOException(why))
                {
                    LastEventId = last?.ToString(CultureInfo.InvariantCulture),
                };
            }

            var delay = TimeSpan.FromMilliseconds(Math.Min(3200, 200 * (1 << Math.Min(failures - 1, 5))));
            await Task.Delay(delay, _timeProvider, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<(ServerSentEvents? Stream, string? Failure, Exception? Cause)> OpenEventStreamAsync(string path, ulong? after, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, Url(path));
        Authorize(request);
        request.Headers.Accept.ParseAdd("text/event-stream");
        if (after is { } a)
        {
            request.Headers.TryAddWithoutValidation("Last-Event-ID", a.ToString(CultureInfo.InvariantCulture));
        }

        var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        try
        {
            await EnsureSuccessAsync(response, cancellationToken).ConfigureAwait(false);
            var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            return (new ServerSentEvents(response, stream), null, null);
        }
        catch
        {
            response.Dispose();
            throw;
        }
    }

    /// <summary>A reconnect: what can pass (no connection, a timeout, a 5xx or 429 while a silo drains) is a failure to retry.</summary>
    private async Task<(ServerSentEvents? Stream, string? Failure, Exception? Cause)> TryOpenEventStreamAsync(string path, ulong? after, CancellationToken cancellationToken)
    {
        try
        {
            return await OpenEventStreamAsync(path, after, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException ex)
        {
            return (null, "reconnect failed: " + ex.Message, ex);
        }
        catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
        {
            return (null, "reconnect timed out", ex);
        }
        catch (ConveyorApiException ex) when ((int)ex.Status >= 500 || ex.Status == HttpStatusCode.TooManyRequests)
        {
            return (null, $"reconnect refused with {(int)ex.Status}", ex);
        }
    }
}
