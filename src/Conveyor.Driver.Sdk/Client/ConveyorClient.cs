using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Conveyor.Contracts;

namespace Conveyor.Driver.Sdk.Client;

/// <summary>
/// Typed client for the Conveyor HTTP API (resource definitions, pipelines, resources, runs, run logs). Every error response
/// becomes a <see cref="ConveyorApiException"/>.
/// </summary>
public sealed class ConveyorClient
{
    private static readonly MediaTypeHeaderValue JsonMediaType = new("application/json") { CharSet = "utf-8" };
    private static readonly TimeSpan MinPollInterval = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan MaxPollInterval = TimeSpan.FromSeconds(1);

    private readonly HttpClient _http;
    private readonly Uri _baseAddress;
    private readonly TimeProvider _timeProvider;

    /// <summary>Creates a client on <paramref name="httpClient"/>.</summary>
    /// <param name="httpClient">Transport; its <see cref="HttpClient.BaseAddress"/> is used when <paramref name="baseAddress"/> is null.</param>
    /// <param name="baseAddress">API root, e.g. <c>http://127.0.0.1:8080/</c>; a path prefix is kept.</param>
    /// <param name="timeProvider">Clock for <see cref="WaitForRunAsync"/>.</param>
    /// <exception cref="ArgumentException">No base address is given.</exception>
    public ConveyorClient(HttpClient httpClient, Uri? baseAddress = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(httpClient);
        _http = httpClient;
        var root = baseAddress ?? httpClient.BaseAddress
            ?? throw new ArgumentException("A base address is required: pass one or set HttpClient.BaseAddress.", nameof(baseAddress));
        _baseAddress = root.AbsoluteUri.EndsWith('/') ? root : new Uri(root.AbsoluteUri + "/");
        _timeProvider = timeProvider ?? TimeProvider.System;
    }

    /// <summary>The API root requests are sent to.</summary>
    public Uri BaseAddress => _baseAddress;

    /// <summary>
    /// API key (<c>cvk_…</c>) sent as <c>Authorization: Bearer</c> on every request; null sends none (a single node
    /// without authentication). A 401 or 403 surfaces as <see cref="ConveyorApiException"/>.
    /// </summary>
    public string? ApiKey { get; init; }

    private void Authorize(HttpRequestMessage request)
    {
        if (!string.IsNullOrEmpty(ApiKey))
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", ApiKey);
        }
    }

    /// <summary><c>POST /resource-definitions</c>: creates a resource definition (201).</summary>
    public Task<ResourceDefinition> CreateResourceDefinitionAsync(ResourceDefinition definition, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Post, "resource-definitions", definition, ClientJsonContext.Default.ResourceDefinition, ClientJsonContext.Default.ResourceDefinition, cancellationToken);

    /// <summary><c>POST /resource-definitions/apply</c>: creates or replaces a resource definition.</summary>
    public Task<ResourceDefinition> ApplyResourceDefinitionAsync(ResourceDefinition definition, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Post, "resource-definitions/apply", definition, ClientJsonContext.Default.ResourceDefinition, ClientJsonContext.Default.ResourceDefinition, cancellationToken);

    /// <summary><c>GET /resource-definitions/{name}</c>.</summary>
    public Task<ResourceDefinition> GetResourceDefinitionAsync(string name, CancellationToken cancellationToken = default) =>
        SendAsync<object, ResourceDefinition>(HttpMethod.Get, "resource-definitions/" + Segment(name), null, null, ClientJsonContext.Default.ResourceDefinition, cancellationToken);

    /// <summary><c>PUT /resource-definitions/{name}</c> with <paramref name="definition"/>'s name.</summary>
    public Task<ResourceDefinition> UpdateResourceDefinitionAsync(ResourceDefinition definition, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(definition);
        return SendAsync(HttpMethod.Put, "resource-definitions/" + Segment(definition.Name), definition, ClientJsonContext.Default.ResourceDefinition, ClientJsonContext.Default.ResourceDefinition, cancellationToken);
    }

    /// <summary><c>DELETE /resource-definitions/{name}</c> (204).</summary>
    public Task DeleteResourceDefinitionAsync(string name, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Delete, "resource-definitions/" + Segment(name), cancellationToken);

    /// <summary><c>POST /pipelines</c>: creates a pipeline (201, echoed).</summary>
    public Task<Pipeline> CreatePipelineAsync(Pipeline pipeline, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Post, "pipelines", pipeline, ClientJsonContext.Default.Pipeline, ClientJsonContext.Default.Pipeline, cancellationToken);

    /// <summary><c>GET /pipelines/{name}</c>.</summary>
    public Task<Pipeline> GetPipelineAsync(string name, CancellationToken cancellationToken = default) =>
        SendAsync<object, Pipeline>(HttpMethod.Get, "pipelines/" + Segment(name), null, null, ClientJsonContext.Default.Pipeline, cancellationToken);

    /// <summary><c>PUT /pipelines/{name}</c> with <paramref name="pipeline"/>'s name.</summary>
    public Task<Pipeline> UpdatePipelineAsync(Pipeline pipeline, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        return SendAsync(HttpMethod.Put, "pipelines/" + Segment(pipeline.Name), pipeline, ClientJsonContext.Default.Pipeline, ClientJsonContext.Default.Pipeline, cancellationToken);
    }

    /// <summary><c>DELETE /pipelines/{name}</c> (204).</summary>
    public Task DeletePipelineAsync(string name, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Delete, "pipelines/" + Segment(name), cancellationToken);

    /// <summary><c>POST /resources</c>: creates a resource, which starts a run (201).</summary>
    public Task<CreateResourceResponse> CreateResourceAsync(CreateResourceRequest request, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Post, "resources", request, ClientJsonContext.Default.CreateResourceRequest, ClientJsonContext.Default.CreateResourceResponse, cancellationToken);

    /// <summary><c>GET /resources/{type}/{name}</c>.</summary>
    public Task<Resource> GetResourceAsync(string resourceType, string name, CancellationToken cancellationToken = default) =>
        SendAsync<object, Resource>(HttpMethod.Get, $"resources/{Segment(resourceType)}/{Segment(name)}", null, null, ClientJsonContext.Default.Resource, cancellationToken);

    /// <summary><c>PUT /resources/{type}/{name}</c>: replaces the spec and metadata; returns the new version.</summary>
    public Task<Resource> UpdateResourceAsync(Resource resource, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(resource);
        return SendAsync(
            HttpMethod.Put,
            $"resources/{Segment(resource.ResourceType)}/{Segment(resource.Name)}",
            resource,
            ClientJsonContext.Default.Resource,
            ClientJsonContext.Default.Resource,
            cancellationToken);
    }

    /// <summary><c>DELETE /resources/{type}/{name}</c> (204, also when absent; earlier versions stay readable).</summary>
    public Task DeleteResourceAsync(string resourceType, string name, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Delete, $"resources/{Segment(resourceType)}/{Segment(name)}", cancellationToken);

    /// <summary><c>GET /resources/{type}/{name}/{version}</c>: the resource as it was at <paramref name="version"/>.</summary>
    public Task<Resource> GetResourceVersionAsync(string resourceType, string name, int version, CancellationToken cancellationToken = default) =>
        SendAsync<object, Resource>(
            HttpMethod.Get,
            $"resources/{Segment(resourceType)}/{Segment(name)}/{version.ToString(System.Globalization.CultureInfo.InvariantCulture)}",
            null,
            null,
            ClientJsonContext.Default.Resource,
            cancellationToken);

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
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(_baseAddress, $"pipelines/{Segment(pipeline)}/runs"));
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
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(_baseAddress, $"runs/{runId:D}/graph?format={Uri.EscapeDataString(format)}"));
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
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(_baseAddress, path));
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

    /// <summary>
    /// Sends <paramref name="body"/> as JSON to <paramref name="path"/> (relative to <see cref="BaseAddress"/>) and
    /// returns the response's JSON, or null for an empty response. For documents this client has no typed model for
    /// (a pipeline with retries, timeouts and params, say), sent exactly as written.
    /// </summary>
    /// <exception cref="ConveyorApiException">The API answered with an error status.</exception>
    public async Task<JsonElement?> SendJsonAsync(HttpMethod method, string path, JsonElement? body = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(method);
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var request = new HttpRequestMessage(method, new Uri(_baseAddress, path.TrimStart('/')));
        request.Headers.Accept.ParseAdd("application/json");
        if (body is { } json)
        {
            var content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(json, ClientJsonContext.Default.JsonElement));
            content.Headers.ContentType = JsonMediaType;
            request.Content = content;
        }

        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        await EnsureSuccessAsync(response, cancellationToken).ConfigureAwait(false);
        var text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        return string.IsNullOrWhiteSpace(text) ? null : JsonDocument.Parse(text).RootElement.Clone();
    }

    private static string Segment(string value)
    {
        ArgumentException.ThrowIfNullOrEmpty(value);
        return Uri.EscapeDataString(value);
    }

    private async Task SendAsync(HttpMethod method, string path, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(method, new Uri(_baseAddress, path));
        Authorize(request);
        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        await EnsureSuccessAsync(response, cancellationToken).ConfigureAwait(false);
    }

    private async Task<TResponse> SendAsync<TRequest, TResponse>(
        HttpMethod method,
        string path,
        TRequest? body,
        JsonTypeInfo<TRequest>? requestType,
        JsonTypeInfo<TResponse> responseType,
        CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(method, new Uri(_baseAddress, path));
        Authorize(request);
        request.Headers.Accept.ParseAdd("application/json");
        if (body is not null && requestType is not null)
        {
            var content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(body, requestType));
            content.Headers.ContentType = JsonMediaType;
            request.Content = content;
        }

        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        await EnsureSuccessAsync(response, cancellationToken).ConfigureAwait(false);
        var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            return await JsonSerializer.DeserializeAsync(stream, responseType, cancellationToken).ConfigureAwait(false)
                ?? throw new ConveyorApiException($"The Conveyor API returned an empty body for {method} /{path}.");
        }
    }

    private static async Task EnsureSuccessAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        if (response.IsSuccessStatusCode)
        {
            return;
        }

        var body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        throw ConveyorApiException.FromResponse(response.StatusCode, response.Content.Headers.ContentType?.MediaType, body);
    }
}
