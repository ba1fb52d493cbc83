using Conveyor.Client;
using RunPage = Conveyor.Client.RunPage;
using Conveyor.Api.Http;
using Conveyor.Api.Security;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Flow;
using Conveyor.Grains.Runs;
using Conveyor.Grains.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;
using Conveyor.Contracts;
using System.Text.Json;

namespace Conveyor.Api.Endpoints;

/// <summary>Runs: what the original lacks. A run is a real entity with a status, steps and attempts.</summary>
internal static class RunsApi
{
    private const int DefaultPageSize = 20;
    private const int MaxPageSize = 100;
    private static readonly string[] NotOverridable = ["not in the pipeline's overridableParams"];

    /// <summary>Maps the routes onto <paramref name="routes"/>; <paramref name="nameSuffix"/> keeps endpoint names unique when mapped twice.</summary>
    public static RouteGroupBuilder MapRunsApi(this IEndpointRouteBuilder routes, string nameSuffix = "")
    {
        var api = routes.MapGroup("/runs").WithTags("Runs");
        api.MapGet("/", ListRuns).WithName("ListRuns" + nameSuffix).WithSummary("List runs, newest first, by pipeline and status, cursor-paged").ForViewers();
        api.MapGet("/{id}", GetRun).WithName("GetRun" + nameSuffix).WithSummary("Get a run with its steps and every attempt").ForViewers();
        api.MapPost("/{id}/cancel", CancelRun).Accepts<CancelRunRequest>(isOptional: true, "application/json").WithName("CancelRun" + nameSuffix).WithSummary("Cancel a run; in-flight steps are told to stop").ForOperators();
        api.MapPost("/{id}/retry", RetryRun).WithName("RetryRun" + nameSuffix).WithSummary("Run the steps of a failed, cancelled or timed-out run that did not succeed").ForOperators();
        api.MapGet("/{id}/graph", GetRunGraph).Produces<string>(StatusCodes.Status200OK, "image/svg+xml", "text/vnd.mermaid", "text/vnd.graphviz").WithName("GetRunGraph" + nameSuffix).WithSummary("The run's DAG as Mermaid, Graphviz DOT or SVG, coloured by step status").ForViewers();
        routes.MapGet("/pipelines/{name}/runs", ListPipelineRuns).WithTags("Runs").WithName("ListPipelineRuns" + nameSuffix).WithSummary("List a pipeline's runs").ForViewers();
        routes.MapGet("/pipelines/{name}/queue", GetPipelineQueue).WithTags("Runs").WithName("GetPipelineQueue" + nameSuffix)
            .WithSummary("The pipeline's active and queued runs, in admission order").ForViewers();
        routes.MapPost("/pipelines/{name}/runs", TriggerRun).Accepts<TriggerRunRequest>("application/json").WithTags("Runs").WithName("TriggerRun" + nameSuffix)
            .WithSummary("Start a run of the pipeline for an existing resource (idempotent with an Idempotency-Key header)").ForOperators();
        return api;
    }

    /// <summary>GET /runs?pipeline=&amp;status=&amp;limit=&amp;cursor= — newest first.</summary>
    public static Task<Results<Ok<RunPage>, ProblemHttpResult>> ListRuns(
        string? pipeline, string? status, int? limit, string? cursor, IRunIndex index, [AsParameters] ApiContext api) =>
        ListAsync(pipeline, status, limit, cursor, index, api);

    /// <summary>GET /pipelines/{name}/runs — the pipeline's runs, newest first.</summary>
    public static Task<Results<Ok<RunPage>, ProblemHttpResult>> ListPipelineRuns(
        string name, string? status, int? limit, string? cursor, IRunIndex index, [AsParameters] ApiContext api)
    {
        Names.Validate(name, "name");
        return ListAsync(name, status, limit, cursor, index, api);
    }

    /// <summary>
    /// POST /pipelines/{name}/runs — 201 with the new run and its Location; 200 with the existing run when the
    /// <c>Idempotency-Key</c> header repeats one already used for this pipeline (nothing new starts).
    /// </summary>
    public static async Task<Results<Created<RunInfo>, Ok<RunInfo>>> TriggerRun(string name, RunLauncher launcher, [AsParameters] ApiContext api)
    {
        Names.Validate(name, "name");
        var body = await api.ReadBodyAsync<TriggerRunRequest>();
        Names.Validate(body.Resource, "resource");
        var priority = body.Priority ?? RunPriority.Default;
        RunPriority.Validate(priority, "priority");
        if (body.Params is { } p && p.ValueKind is not (JsonValueKind.Object or JsonValueKind.Null))
        {
            throw new ConveyorValidationException("params", "'params' must be a JSON object");
        }

        var key = api.Http.Request.Headers["Idempotency-Key"].ToString();
        if (key.Length > 256)
        {
            throw new ConveyorValidationException("Idempotency-Key", "the Idempotency-Key header must be at most 256 characters");
        }

        var ns = api.Namespace;
        var pipeline = await api.Grains.GetGrain<IPipelineGrain>(Names.PipelineKey(ns, name)).GetAsync()
            ?? throw new ConveyorNotFoundException($"pipeline {name} not found");
        if (body.Params is { ValueKind: JsonValueKind.Object } given)
        {
            // A trigger may only set what the pipeline's author allows: an operator's params must not replace, say, a
            // shell driver's command.
            var refused = given.EnumerateObject().Select(p => p.Name).Where(k => !pipeline.OverridableParams.Contains(k, StringComparer.Ordinal)).ToList();
            if (refused.Count > 0)
            {
                var allowed = pipeline.OverridableParams.Count == 0 ? "none" : string.Join(", ", pipeline.OverridableParams);
                throw new ConveyorValidationException(
                    $"pipeline {name} does not let a trigger set params '{Names.Truncate(refused[0])}' (its overridableParams: {allowed})",
                    refused.Take(20).ToDictionary(k => "params." + Names.Truncate(k), _ => NotOverridable, StringComparer.Ordinal));
            }
        }

        var (resource, _) = await api.Grains.GetGrain<IResourceGrain>(Names.ResourceKey(ns, pipeline.ResourceType, body.Resource!)).GetAsync();
        if (resource is null)
        {
            throw new ConveyorNotFoundException($"resource with name {body.Resource} and type {pipeline.ResourceType} not found");
        }

        var (runId, result) = await launcher.StartAsync(new RunRequest(ns, pipeline, resource, RunTriggers.Manual)
        {
            Priority = priority,
            TriggerId = key.Length == 0 ? null : key,
            Params = body.Params is { ValueKind: JsonValueKind.Object } o ? o.GetRawText() : null,
        });
        var dto = ApiMapping.ToRunInfo(result.Run, await QueuePositionAsync(result.Run, api));
        return result.Created ? TypedResults.Created($"{api.Settings.Prefix}{NamespacePrefix(api)}/runs/{runId}", dto) : TypedResults.Ok(dto);
    }

    /// <summary>GET /pipelines/{name}/queue — the runs holding a slot and those waiting, in admission order.</summary>
    public static async Task<Ok<PipelineQueue>> GetPipelineQueue(string name, IOptions<FlowControlOptions> flow, [AsParameters] ApiContext api)
    {
        Names.Validate(name, "name");
        var ns = api.Namespace;
        var pipeline = await api.Grains.GetGrain<IPipelineGrain>(Names.PipelineKey(ns, name)).GetAsync()
            ?? throw new ConveyorNotFoundException($"pipeline {name} not found");
        var nsLimit = flow.Value.LimitFor(ns);
        var snapshot = await api.Grains.GetGrain<IAdmissionGrain>(flow.Value.QueueKeyFor(ns, name)).GetSnapshotAsync();
        var queued = snapshot.Queued.Select((q, i) => (q, i)).Where(x => x.q.Pipeline == name).ToList();
        return TypedResults.Ok(new PipelineQueue
        {
            Concurrency = pipeline.Concurrency,
            NamespaceLimit = nsLimit,
            NamespaceActive = nsLimit is null ? null : snapshot.Active.Count,
            Active = snapshot.Active.Where(a => a.Pipeline == name).Select(a => ApiMapping.ToQueueEntry(a, null)).ToList(),
            Queued = queued.Select(x => ApiMapping.ToQueueEntry(x.q, x.i + 1)).ToList(),
        });
    }

    private static async Task<int?> QueuePositionAsync(RunState run, ApiContext api) =>
        run.Status == RunStatus.Queued && run.AdmissionKey is { } key
            ? await api.Grains.GetGrain<IAdmissionGrain>(key).GetPositionAsync(run.RunId)
            : null;

    private static string NamespacePrefix(ApiContext api) =>
        api.Http.GetRouteValue("namespace") is string ns ? $"/namespaces/{ns}" : "";

    /// <summary>GET /runs/{id} — 200 or 404 (also when the run belongs to another namespace).</summary>
    public static async Task<Results<Ok<RunInfo>, ProblemHttpResult>> GetRun(string id, [AsParameters] ApiContext api)
    {
        var (_, run) = await FindAsync(id, api);
        return TypedResults.Ok(ApiMapping.ToRunInfo(run, await QueuePositionAsync(run, api)));
    }

    /// <summary>POST /runs/{id}/cancel — 200 with the cancelled run; 409 when it already ended.</summary>
    public static async Task<Ok<RunInfo>> CancelRun(string id, [AsParameters] ApiContext api)
    {
        var (grain, _) = await FindAsync(id, api);
        // The body is optional; chunked bodies have no Content-Length, so ask the server whether one can follow.
        var hasBody = api.Http.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody ?? api.Http.Request.ContentLength > 0;
        var body = hasBody ? await api.ReadBodyAsync<CancelRunRequest>() : null;
        var run = await grain.CancelAsync(string.IsNullOrWhiteSpace(body?.Reason) ? "cancelled by request" : body.Reason, api.Http.CallerKey()?.Id);
        return TypedResults.Ok(ApiMapping.ToRunInfo(run));
    }

    /// <summary>POST /runs/{id}/retry — 200 with the restarted run; 409 unless it is Failed, Cancelled or TimedOut.</summary>
    public static async Task<Ok<RunInfo>> RetryRun(string id, [AsParameters] ApiContext api)
    {
        var (grain, _) = await FindAsync(id, api);
        return TypedResults.Ok(ApiMapping.ToRunInfo(await grain.RetryAsync(api.Http.CallerKey()?.Id)));
    }

    /// <summary>GET /runs/{id}/graph?format=mermaid|dot|svg (default svg).</summary>
    public static async Task<IResult> GetRunGraph(string id, string? format, [AsParameters] ApiContext api)
    {
        var (_, run) = await FindAsync(id, api);
        return (format ?? "svg").ToLowerInvariant() switch
        {
            "svg" => TypedResults.Text(RunGraph.Svg(run), "image/svg+xml"),
            "mermaid" => TypedResults.Text(RunGraph.Mermaid(run), "text/vnd.mermaid; charset=utf-8"),
            "dot" => TypedResults.Text(RunGraph.Dot(run), "text/vnd.graphviz; charset=utf-8"),
            _ => throw new ConveyorValidationException("format", $"'format' must be svg, mermaid or dot (got '{format}')"),
        };
    }

    private static async Task<(IPipelineRunGrain Grain, RunState Run)> FindAsync(string id, ApiContext api)
    {
        if (!Guid.TryParse(id, out var runId))
        {
            throw new ConveyorValidationException("id", $"'{Names.Truncate(id)}' is not a run id (UUID)");
        }

        var ns = api.Namespace;
        var grain = api.Grains.GetRunGrain(runId);
        var run = await grain.GetAsync();
        return run is null || run.Plan.Namespace != ns ? throw new ConveyorNotFoundException($"run {runId} not found") : (grain, run);
    }

    private static async Task<Results<Ok<RunPage>, ProblemHttpResult>> ListAsync(
        string? pipeline, string? status, int? limit, string? cursor, IRunIndex index, ApiContext api)
    {
        var ns = api.Namespace;
        if (!index.IsAvailable)
        {
            return Problems.Create(StatusCodes.Status501NotImplemented, "not-implemented", "Listing is unavailable.", "run listing needs the Redis index (UseConveyorRedisStorage)");
        }

        if (pipeline is not null)
        {
            Names.Validate(pipeline, "pipeline");
        }

        var wanted = RunsApi.ParseStatusFilter(status);

        var size = limit ?? DefaultPageSize;
        if (size is < 1 or > MaxPageSize)
        {
            throw new ConveyorValidationException("limit", $"'limit' must be between 1 and {MaxPageSize}");
        }

        var page = await index.ListAsync(ns, pipeline, wanted, cursor, size);
        var summaries = await Task.WhenAll(page.RunIds.Select(id => api.Grains.GetRunGrain(id).GetSummaryAsync()));
        var items = new List<RunSummaryInfo>(summaries.Length);
        for (var i = 0; i < summaries.Length; i++)
        {
            var summary = summaries[i];
            if (summary is null)
            {
                // Read repair: the index was written before a run that never got stored.
                await index.RemoveAsync(ns, pipeline, page.RunIds[i]);
                continue;
            }

            // A status entry can lag a crash; the grain has just repaired it, so it is simply not shown here.
            if (summary.Namespace == ns && (wanted is null || summary.Status == wanted))
            {
                items.Add(ApiMapping.ToRunSummary(summary));
            }
        }

        return TypedResults.Ok(new RunPage { Items = items, NextCursor = page.NextCursor });
    }

    /// <summary>The <c>status</c> filter of a run listing or feed: null when absent; a name of <see cref="RunStatus"/> (any case), never a number.</summary>
    internal static RunStatus? ParseStatusFilter(string? status)
    {
        if (string.IsNullOrEmpty(status))
        {
            return null;
        }

        if (!Enum.TryParse<RunStatus>(status, ignoreCase: true, out var parsed) || !Enum.IsDefined(parsed) || int.TryParse(status, out _))
        {
            throw new ConveyorValidationException("status", $"'status' must be one of {string.Join(", ", Enum.GetNames<RunStatus>())} (got '{Names.Truncate(status)}')");
        }

        return parsed;
    }
}
