using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Conveyor.Contracts;

namespace Conveyor.Client;

/// <content>Runs: get, list, trigger, cancel, retry, graph, wait.</content>
public sealed partial class ConveyorClient
{
    /// <summary><c>GET /runs/{id}</c>.</summary>
    public Task<RunInfo> GetRunAsync(Guid runId, CancellationToken cancellationToken = default) =>
        SendAsync<object, RunInfo>(HttpMethod.Get, "runs/" + runId.ToString("D"), null, null, ClientJsonContext.Default.RunInfo, cancellationToken);

    /// <summary><c>GET /runs</c> (or <c>/pipelines/{pipeline}/runs</c>): one page of runs, newest first.</summary>
    /// <param name="pipeline">Only this pipeline's runs.</param>
    /// <param name="status">Only runs in this status.</param>
    /// <param name="limit">Page size, 1–100 (server default 20).</param>
    /// <param name="cursor"><see cref="RunPage.NextCursor"/> of the previous page.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    public Task<RunPage> ListRunsAsync(string? pipeline = null, RunStatus? status = null, int? limit = null, string? cursor = null, CancellationToken cancellationToken = default)
    {
        var query = new List<string>();
        if (status is { } s)
        {
            query.Add("status=" + s);
        }

        if (limit is { } l)
        {
            query.Add("limit=" + l.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        if (!string.IsNullOrEmpty(cursor))
        {
            query.Add("cursor=" + Uri.EscapeDataString(cursor));
        }

        var path = (pipeline is null ? "runs" : $"pipelines/{Segment(pipeline)}/runs") + (query.Count == 0 ? "" : "?" + string.Join('&', query));
        return SendAsync<object, RunPage>(HttpMethod.Get, path, null, null, ClientJsonContext.Default.RunPage, cancellationToken);
    }

    /// <summary>Every run matching the filters, newest first, following cursors page by page.</summary>
    public async IAsyncEnumerable<RunSummaryInfo> ListAllRunsAsync(
        string? pipeline = null,
        RunStatus? status = null,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        string? cursor = null;
        do
        {
            var page = await ListRunsAsync(pipeline, status, 100, cursor, cancellationToken).ConfigureAwait(false);
            foreach (var item in page.Items)
            {
                yield return item;
            }

            cursor = page.NextCursor;
        }
        while (cursor is not null);
    }

    /// <summary>
    /// <c>POST /pipelines/{pipeline}/runs</c>: starts a run of <paramref name="pipeline"/> for the existing resource
    /// <paramref name="resource"/>. With an <paramref name="idempotencyKey"/>, repeating the call returns the run the
    /// first call started and starts nothing.
    /// </summary>
    /// <exception cref="ConveyorApiException">404 for an unknown pipeline or resource, 400 for a bad priority or params.</exception>
    public async Task<RunInfo> TriggerRunAsync(
        string pipeline,
        string resource,
        int? priority = null,
        JsonElement? parameters = null,
        string? idempotencyKey = null,
        CancellationToken cancellationToken = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, Url($"pipelines/{Segment(pipeline)}/runs"));
        Authorize(request);
        request.Headers.Accept.ParseAdd("application/json");
        if (!string.IsNullOrEmpty(idempotencyKey))
        {
            request.Headers.TryAddWithoutValidation("Idempotency-Key", idempotencyKey);
        }

        var content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(
            new TriggerRunRequest { Resource = resource, Priority = priority, Params = parameters },
            ClientJsonContext.Default.TriggerRunRequest));
        content.Headers.ContentType = JsonMediaType;
        request.Content = content;
        using var response = await _http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        await EnsureSuccessAsync(response, cancellationToken).ConfigureAwait(false);
        var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            return await JsonSerializer.DeserializeAsync(stream, ClientJsonContext.Default.RunInfo, cancellationToken).ConfigureAwait(false)
                ?? throw new ConveyorApiException("The Conveyor API returned an empty body for POST /pipelines/{pipeline}/runs.");
        }
    }

    /// <summary><c>POST /runs/{id}/cancel</c>: cancels a Pending or Running run (409 when it already ended).</summary>
    public Task<RunInfo> CancelRunAsync(Guid runId, string? reason = null, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Post, $"runs/{runId:D}/cancel", new CancelRunRequest { Reason = reason }, ClientJsonContext.Default.CancelRunRequest, ClientJsonContext.Default.RunInfo, cancellationToken);

    /// <summary><c>POST /runs/{id}/retry</c>: re-runs what did not succeed in a Failed, Cancelled or TimedOut run.</summary>
    public Task<RunInfo> RetryRunAsync(Guid runId, CancellationToken cancellationToken = default) =>
        SendAsync<object, RunInfo>(HttpMethod.Post, $"runs/{runId:D}/retry", null, null, ClientJsonContext.Default.RunInfo, cancellationToken);

    /// <summary><c>GET /runs/{id}/graph</c>: the run's DAG as <c>svg</c>, <c>mermaid</c> or <c>dot</c> text.</summary>
    public async Task<string> GetRunGraphAsync(Guid runId, string format = "svg", CancellationToken cancellationToken = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, Url($"runs/{runId:D}/graph?format={Uri.EscapeDataString(format)}"));
        Authorize(request);
        using var response = await _http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        await EnsureSuccessAsync(response, cancellationToken).ConfigureAwait(false);
        return await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Polls <c>GET /runs/{id}</c> until the run reaches a final status and returns it. A 404 counts as "not visible
    /// yet" and is polled again.
    /// </summary>
    /// <exception cref="TimeoutException">The run did not finish within <paramref name="timeout"/>.</exception>
    public async Task<RunInfo> WaitForRunAsync(Guid runId, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var started = _timeProvider.GetTimestamp();
        var interval = MinPollInterval;
        RunInfo? last = null;
        while (true)
        {
            try
            {
                last = await GetRunAsync(runId, cancellationToken).ConfigureAwait(false);
                if (last.IsFinished)
                {
                    return last;
                }
            }
            catch (ConveyorApiException ex) when (ex.Status == HttpStatusCode.NotFound)
            {
                // Not visible yet.
            }

            var remaining = timeout - _timeProvider.GetElapsedTime(started);
            if (remaining <= TimeSpan.Zero)
            {
                throw new TimeoutException(
                    $"Run {runId} did not finish within {timeout}; last status: {(last is null ? "not found" : last.Status.ToString())}.");
            }

            await Task.Delay(remaining < interval ? remaining : interval, _timeProvider, cancellationToken).ConfigureAwait(false);
            interval = interval * 2 < MaxPollInterval ? interval * 2 : MaxPollInterval;
        }
    }
}
