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
    /// </summary>
    /// <exception cref="ConveyorApiException">The run does not exist, or the server dropped this reader because it read too slowly.</exception>
    public async IAsyncEnumerable<LogLine> FollowRunLogsAsync(
        string runId,
        ulong? after = null,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var path = $"runs/{Segment(runId)}/logs/stream";
        using var request = new HttpRequestMessage(HttpMethod.Get, Url(path));
        Authorize(request);
        request.Headers.Accept.ParseAdd("text/event-stream");
        if (after is { } a)
        {
            request.Headers.TryAddWithoutValidation("Last-Event-ID", a.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        await EnsureSuccessAsync(response, cancellationToken).ConfigureAwait(false);
        var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            using var reader = new StreamReader(stream);
            string? eventName = null;
            var data = new System.Text.StringBuilder();
            while (await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false) is { } line)
            {
                if (line.Length == 0)
                {
                    // End of one event.
                    switch (eventName ?? "message")
                    {
                        case "log" or "message" when data.Length > 0:
                            yield return JsonSerializer.Deserialize(data.ToString(), ClientJsonContext.Default.LogLine)
                                ?? throw new ConveyorApiException("The Conveyor API sent an empty log event.");
                            break;
                        case "end":
                            yield break;
                        case "dropped":
                            throw new ConveyorApiException($"The Conveyor API stopped following run {runId}'s log: this reader fell behind ({data}).");
                    }

                    eventName = null;
                    data.Clear();
                }
                else if (line.StartsWith("event:", StringComparison.Ordinal))
                {
                    eventName = line[6..].Trim();
                }
                else if (line.StartsWith("data:", StringComparison.Ordinal))
                {
                    if (data.Length > 0)
                    {
                        data.Append('\n');
                    }

                    data.Append(line.AsSpan(line.Length > 5 && line[5] == ' ' ? 6 : 5));
                }

                // "id:" lines repeat the entry's seq; ":" lines are heartbeats.
            }
        }
    }
}
