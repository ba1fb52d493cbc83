using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Conveyor.Contracts;

namespace Conveyor.Client;

/// <summary>
/// Typed client for the Conveyor HTTP API (resource definitions, pipelines, resources, runs, run logs). Every error response
/// becomes a <see cref="ConveyorApiException"/>.
/// </summary>
public sealed partial class ConveyorClient
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

    /// <summary>
    /// Namespace of the objects this client reads and writes (definitions, pipelines, resources, runs, logs,
    /// secrets): their routes go under <c>/namespaces/{namespace}/</c>. Null or <c>default</c>: the original
    /// routes. Keys, namespaces, health and step secrets are cluster-wide and never scoped.
    /// </summary>
    public string? Namespace { get; init; }

    /// <summary>A client for the objects of <paramref name="ns"/>, on the same transport and key.</summary>
    public ConveyorClient InNamespace(string ns)
    {
        ArgumentException.ThrowIfNullOrEmpty(ns);
        return new ConveyorClient(_http, _baseAddress, _timeProvider) { ApiKey = ApiKey, Namespace = ns };
    }

    private static readonly string[] ClusterRoutes = ["keys", "namespaces", "health", "healthz", "readyz", "step-secrets", "hooks", "openapi", "logs"];

    /// <summary>The absolute URL of a route, under the client's namespace when the route is per namespace.</summary>
    private Uri Url(string path)
    {
        if (Namespace is { Length: > 0 } ns && ns != "default")
        {
            var first = path.Split('/', '?')[0];
            if (!ClusterRoutes.Contains(first, StringComparer.Ordinal))
            {
                path = $"namespaces/{Uri.EscapeDataString(ns)}/{path}";
            }
        }

        return new Uri(_baseAddress, path);
    }

    private void Authorize(HttpRequestMessage request)
    {
        if (!string.IsNullOrEmpty(ApiKey))
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", ApiKey);
        }
    }

    /// <summary>
    /// <c>GET /step-secrets</c>: the current values of the secrets a pipeline step may read, authenticated by the
    /// step token of its dispatch (not by <see cref="ApiKey"/>). Drivers built on the SDK call it through their
    /// <c>DriverContext</c>.
    /// </summary>
    /// <param name="stepToken">The dispatch's <c>step_token</c>.</param>
    /// <param name="name">Only this secret; null for every secret the step names.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    /// <exception cref="ConveyorApiException">401: the token is invalid or expired; 403: the attempt is over or the step does not name the secret; 404: the secret is gone.</exception>
    public async Task<StepSecrets> GetStepSecretsAsync(string stepToken, string? name = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(stepToken);
        var path = name is null ? "step-secrets" : "step-secrets?name=" + Uri.EscapeDataString(name);
        using var request = new HttpRequestMessage(HttpMethod.Get, Url(path));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", stepToken);
        request.Headers.Accept.ParseAdd("application/json");
        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        return await ReadAsync(response, ClientJsonContext.Default.StepSecrets, HttpMethod.Get, path, cancellationToken).ConfigureAwait(false);
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
        using var request = new HttpRequestMessage(method, Url(path.TrimStart('/')));
        Authorize(request);
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
        using var request = new HttpRequestMessage(method, Url(path));
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
        using var request = new HttpRequestMessage(method, Url(path));
        Authorize(request);
        request.Headers.Accept.ParseAdd("application/json");
        if (body is not null && requestType is not null)
        {
            var content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(body, requestType));
            content.Headers.ContentType = JsonMediaType;
            request.Content = content;
        }

        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        return await ReadAsync(response, responseType, method, path, cancellationToken).ConfigureAwait(false);
    }

    private static async Task<T> ReadAsync<T>(HttpResponseMessage response, JsonTypeInfo<T> type, HttpMethod method, string path, CancellationToken cancellationToken)
    {
        await EnsureSuccessAsync(response, cancellationToken).ConfigureAwait(false);
        var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            return await JsonSerializer.DeserializeAsync(stream, type, cancellationToken).ConfigureAwait(false)
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
        var retryAfter = response.Headers.RetryAfter?.Delta;
        throw ConveyorApiException.FromResponse(response.StatusCode, response.Content.Headers.ContentType?.MediaType, body, retryAfter);
    }
}
