using System.Globalization;
using System.Text;
using Conveyor.Client;
using LogPage = Conveyor.Client.LogPage;
using Conveyor.Api.Http;
using Conveyor.Api.Security;
using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Logs;
using Conveyor.Grains.Runs;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Net.Http.Headers;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Conveyor.Api.Endpoints;

/// <summary>
/// Run logs: the original's <c>/logs</c> routes (default namespace) and paged and live reads per run. Entries come
/// from the <see cref="ILogStore"/>, which the log ingestor fills from the original's <c>logs.&gt;</c> work queue.
/// </summary>
internal static class LogsApi
{
    private const int DefaultPageSize = 100;
    private const int MaxPageSize = 1000;
    private const string EventStream = "text/event-stream";

    /// <summary>Maps the per-run routes (<c>/runs/{id}/logs</c>, <c>/runs/{id}/logs/stream</c>).</summary>
    public static IEndpointRouteBuilder MapRunLogsApi(this IEndpointRouteBuilder routes, string nameSuffix = "")
    {
        var api = routes.MapGroup("/runs/{id}/logs").WithTags("Logs");
        api.MapGet("/", GetRunLogs).Produces<string>(StatusCodes.Status200OK, "text/plain").WithName("GetRunLogs" + nameSuffix)
            .WithSummary("A page of the run's log, filtered by driver and step; JSON, or text/plain with ?format=text").ForViewers();
        api.MapGet("/stream", StreamRunLogs).WithName("StreamRunLogs" + nameSuffix)
            .WithSummary("Follow the run's log as Server-Sent Events: history, then live entries, then an end event")
            .Produces<string>(StatusCodes.Status200OK, EventStream).ProducesProblem(StatusCodes.Status404NotFound).ForViewers().LimitStreams(routes);
        return routes;
    }

    /// <summary>Maps the original's routes: <c>POST /logs</c>, <c>GET /logs</c> and its two SSE routes.</summary>
    public static IEndpointRouteBuilder MapOriginalLogsApi(this IEndpointRouteBuilder routes)
    {
        var api = routes.MapGroup("/logs").WithTags("Logs");
        api.MapPost("/", CreateLog).Accepts<LogEntry>("application/json").Produces<string>(StatusCodes.Status201Created, "text/plain").WithName("CreateLog").WithSummary("Add a log entry (flows through logs.{runid} like a driver's)").ForOperators();
        api.MapGet("/", ListLogs).WithName("ListLogs").WithSummary("A run's log entries as the original's JSON array (runid required)").ForViewers();
        api.MapGet("/pipeline/{runid}", StreamPipelineLogs).WithName("StreamPipelineLogs").WithSummary("The original's SSE stream of a run's log")
            .Produces<string>(StatusCodes.Status200OK, EventStream).ForViewers().LimitStreams(routes);
        api.MapGet("/streams/{drivername}/{runid}", StreamDriverLogs).WithName("StreamDriverLogs").WithSummary("The original's SSE stream of one driver's log in a run")
            .Produces<string>(StatusCodes.Status200OK, EventStream).ForViewers().LimitStreams(routes);
        return routes;
    }

    /// <summary>A log stream holds one of the silo's and its key's stream places while it is open (<see cref="StreamLimitFilter"/>).</summary>
    private static RouteHandlerBuilder LimitStreams(this RouteHandlerBuilder builder, IEndpointRouteBuilder routes) =>
        builder.AddEndpointFilter(routes.ServiceProvider.GetRequiredService<StreamLimitFilter>().InvokeAsync);

    /// <summary>GET /runs/{id}/logs?driver=&amp;step=&amp;after=&amp;limit=&amp;format= — one page, in store order.</summary>
    public static async Task<Results<Ok<LogPage>, ContentHttpResult>> GetRunLogs(
        string id, string? driver, string? step, string? after, int? limit, string? format, ILogStore store, [AsParameters] ApiContext api)
    {
        var size = limit ?? DefaultPageSize;
        if (size is < 1 or > MaxPageSize)
        {
            throw new ConveyorValidationException("limit", $"'limit' must be between 1 and {MaxPageSize}");
        }

        var cursor = ParseCursor(after, "after");
        var asText = format switch
        {
            null or "" => WantsText(api.Http.Request),
            _ when format.Equals("text", StringComparison.OrdinalIgnoreCase) => true,
            _ when format.Equals("json", StringComparison.OrdinalIgnoreCase) => false,
            _ => throw new ConveyorValidationException("format", $"'format' must be json or text (got '{Names.Truncate(format)}')"),
        };
        await FindRunAsync(id, store, api);
        var page = await store.ReadAsync(id, new LogQuery { Driver = NullIfEmpty(driver), Step = NullIfEmpty(step), After = cursor, Limit = size }, api.Http.RequestAborted);
        var next = page.NextCursor?.ToString(CultureInfo.InvariantCulture);
        if (!asText)
        {
            return TypedResults.Ok(new LogPage { Items = [.. page.Items.Select(ApiMapping.ToLogLine)], NextCursor = next });
        }

        if (next is not null)
        {
            api.Http.Response.Headers["Conveyor-Next-Cursor"] = next;
        }

        var text = new StringBuilder();
        foreach (var stored in page.Items)
        {
            var entry = stored.Entry;
            text.Append(entry.Timestamp).Append(" [").Append(entry.Driver);
            if (entry.Labels is { } labels && labels.TryGetValue("step", out var stepLabel) && stepLabel.Length > 0)
            {
                text.Append('/').Append(stepLabel);
            }

            text.Append("] ").Append(entry.Message).Append('\n');
        }

        return TypedResults.Text(text.ToString(), "text/plain; charset=utf-8");
    }

    /// <summary>
    /// GET /runs/{id}/logs/stream — SSE from the start, or after <c>Last-Event-ID</c> / <c>?after=</c>; ends with
    /// <c>event: end</c> when the run has finished. 404 before streaming when there is no such run.
    /// </summary>
    public static async Task<EmptyHttpResult> StreamRunLogs(string id, string? after, ILogStore store, TimeProvider time, [AsParameters] ApiContext api)
    {
        var lastEventId = api.Http.Request.Headers["Last-Event-ID"].ToString();
        var cursor = !string.IsNullOrEmpty(lastEventId) ? ParseCursor(lastEventId, "Last-Event-ID") : ParseCursor(after, "after");
        var run = await FindRunAsync(id, store, api);
        await new LogEventStream { Store = store, RunId = id, After = cursor, Run = run, Extended = true }.WriteAsync(api.Http, time);
        return TypedResults.Empty;
    }

    /// <summary>
    /// POST /logs — 201 <c>Created</c>; the entry is published on <c>logs.{runid}</c> and stored from there. A run id
    /// that is a UUID — what the engine's runs are — must name a run of this namespace (or a log that already has
    /// entries), else 404: run ids can be derived from what triggers them, so a line written ahead would show in a run
    /// that someone else starts later. Other ids (the original's free-form ones) are never a run's and are accepted.
    /// </summary>
    public static async Task<ContentHttpResult> CreateLog(INatsConnection nats, ILogStore store, [AsParameters] ApiContext api)
    {
        var entry = await api.ReadBodyAsync<LogEntry>();
        RequireRunId(entry.RunId, "runid");
        if (Guid.TryParse(entry.RunId, out _))
        {
            await FindRunAsync(entry.RunId, store, api);
        }

        var js = new NatsJSContext(nats);
        var ack = await js.PublishAsync(Subjects.Logs(entry.RunId), JsonSerializerUtf8(entry), cancellationToken: api.Http.RequestAborted);
        ack.EnsureSuccess();
        return TypedResults.Text("Created", "text/plain; charset=utf-8", statusCode: StatusCodes.Status201Created);
    }

    /// <summary>
    /// GET /logs?runid=&amp;driver=&amp;pipeline=&amp;after=&amp;limit= — one page of the run's entries as the original's
    /// array, in store order: at most <c>limit</c> (default and most 1000) entries after the sequence <c>after</c>. When
    /// more are stored, <c>Conveyor-Next-Cursor</c> and a <c>Link: rel="next"</c> header say where to read on, so a
    /// read never loads a whole log however long it grew. Unlike the original, <c>runid</c> is required: entries are
    /// stored per run.
    /// </summary>
    public static async Task<Ok<List<LogEntry>>> ListLogs(
        string? runid, string? driver, string? pipeline, string? after, int? limit, ILogStore store, [AsParameters] ApiContext api)
    {
        if (string.IsNullOrEmpty(runid))
        {
            throw new ConveyorValidationException("runid", "'runid' is required: logs are stored per run, so listing every log of every run is not supported");
        }

        var size = limit ?? MaxPageSize;
        if (size is < 1 or > MaxPageSize)
        {
            throw new ConveyorValidationException("limit", $"'limit' must be between 1 and {MaxPageSize}");
        }

        var cursor = ParseCursor(after, "after");
        await FindRunAsync(runid, store, api, "runid");
        var page = await store.ReadAsync(runid, new LogQuery { Driver = NullIfEmpty(driver), After = cursor, Limit = size }, api.Http.RequestAborted);
        if (page.NextCursor is { } next)
        {
            var nextText = next.ToString(CultureInfo.InvariantCulture);
            var request = api.Http.Request;
            var query = Microsoft.AspNetCore.WebUtilities.QueryHelpers.ParseQuery(request.QueryString.Value);
            query["after"] = nextText;
            var link = request.PathBase + request.Path + Microsoft.AspNetCore.Http.QueryString.Create(query);
            api.Http.Response.Headers["Conveyor-Next-Cursor"] = nextText;
            api.Http.Response.Headers.Link = $"<{link}>; rel=\"next\"";
        }

        return TypedResults.Ok(page.Items.Select(i => i.Entry).Where(e => string.IsNullOrEmpty(pipeline) || e.Pipeline == pipeline).ToList());
    }

    /// <summary>GET /logs/pipeline/{runid} — the original's SSE framing (<c>data: &lt;json&gt;</c>), history then live.</summary>
    public static async Task<EmptyHttpResult> StreamPipelineLogs(string runid, ILogStore store, TimeProvider time, [AsParameters] ApiContext api)
    {
        await FindRunAsync(runid, store, api, "runid");
        await new LogEventStream { Store = store, RunId = runid }.WriteAsync(api.Http, time);
        return TypedResults.Empty;
    }

    /// <summary>GET /logs/streams/{drivername}/{runid} — as <see cref="StreamPipelineLogs"/>, one driver's entries only.</summary>
    public static async Task<EmptyHttpResult> StreamDriverLogs(string drivername, string runid, ILogStore store, TimeProvider time, [AsParameters] ApiContext api)
    {
        await FindRunAsync(runid, store, api, "runid");
        await new LogEventStream { Store = store, RunId = runid, Driver = drivername }.WriteAsync(api.Http, time);
        return TypedResults.Empty;
    }

    /// <summary>
    /// The run grain when the run exists in the request's namespace; null when there is no run grain but the store has
    /// entries (a resource without a pipeline, or an original driver's own run id). 404 otherwise.
    /// </summary>
    private static async Task<IPipelineRunGrain?> FindRunAsync(string id, ILogStore store, ApiContext api, string field = "id")
    {
        RequireRunId(id, field);
        var ns = api.Namespace;
        if (Guid.TryParse(id, out var runId))
        {
            var grain = api.Grains.GetRunGrain(runId);
            if (await grain.GetSummaryAsync() is { } summary)
            {
                return summary.Namespace == ns ? grain : throw new ConveyorNotFoundException($"run {id} not found");
            }
        }

        // Entries with no run object (a resource without a pipeline, an original driver's own id) belong to no
        // namespace the engine knows, so only the default namespace — the original's — shows them.
        if (ns != Names.DefaultNamespace)
        {
            throw new ConveyorNotFoundException($"run {Names.Truncate(id)} not found");
        }

        var probe = await store.ReadAsync(id, new LogQuery { Limit = 1 }, api.Http.RequestAborted);
        return probe.Items.Count > 0 ? null : throw new ConveyorNotFoundException($"run {Names.Truncate(id)} not found");
    }

    /// <summary>404 when the id is a run of another namespace: the original's routes never see into other namespaces.</summary>
    private static async Task RequireNotForeignAsync(string id, ApiContext api)
    {
        if (Guid.TryParse(id, out var runId) && await api.Grains.GetRunGrain(runId).GetSummaryAsync() is { } summary && summary.Namespace != api.Namespace)
        {
            throw new ConveyorNotFoundException($"run {id} not found");
        }
    }

    private static void RequireRunId(string? runId, string field)
    {
        if (!LogEntryParser.IsValidRunId(runId))
        {
            throw new ConveyorValidationException(field, $"'{field}' must be a run id: non-empty, without spaces, dots, '*' or '>'");
        }
    }

    private static ulong ParseCursor(string? value, string field) =>
        string.IsNullOrEmpty(value) ? 0
        : ulong.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed) ? parsed
        : throw new ConveyorValidationException(field, $"'{field}' must be a log sequence number (got '{Names.Truncate(value)}')");

    private static bool WantsText(HttpRequest request)
    {
        var accept = request.GetTypedHeaders().Accept;
        if (accept is not { Count: > 0 })
        {
            return false;
        }

        var text = accept.Where(a => a.MediaType.Equals("text/plain", StringComparison.OrdinalIgnoreCase)).Select(a => a.Quality ?? 1).DefaultIfEmpty(0).Max();
        var json = accept.Where(a => a.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase) || a.MediaType.Equals("*/*", StringComparison.Ordinal))
            .Select(a => a.Quality ?? 1).DefaultIfEmpty(0).Max();
        return text > 0 && text >= json;
    }

    private static byte[] JsonSerializerUtf8(LogEntry entry) =>
        System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(entry, ConveyorJson.Context.LogEntry);

    private static string? NullIfEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;
}
