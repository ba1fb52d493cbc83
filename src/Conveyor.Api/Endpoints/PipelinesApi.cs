using Conveyor.Client;
using Conveyor.Api.Http;
using Conveyor.Api.Security;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Catalog;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;

namespace Conveyor.Api.Endpoints;

/// <summary>Pipelines: the original's <c>POST /pipelines</c> (upsert) plus the read/update/delete routes it never registered.</summary>
internal static class PipelinesApi
{
    /// <summary>Maps the routes onto <paramref name="routes"/>; <paramref name="nameSuffix"/> keeps endpoint names unique when mapped twice.</summary>
    public static RouteGroupBuilder MapPipelinesApi(this IEndpointRouteBuilder routes, string nameSuffix = "")
    {
        var api = routes.MapGroup("/pipelines").WithTags("Pipelines");
        api.MapGet("/", ListPipelines).WithName("ListPipelines" + nameSuffix).WithSummary("List pipelines by name, cursor-paged, optionally by name prefix and resource type").ForViewers();
        api.MapPost("/", CreatePipeline).Accepts<Pipeline>("application/json").WithName("CreatePipeline" + nameSuffix).WithSummary("Create or replace a pipeline (upsert, as the original)").ForOperators();
        api.MapGet("/{name}", GetPipeline).WithName("GetPipeline" + nameSuffix).WithSummary("Get a pipeline").ForViewers();
        api.MapPut("/{name}", UpdatePipeline).Accepts<Pipeline>("application/json").WithName("UpdatePipeline" + nameSuffix).WithSummary("Replace a pipeline; runs in flight keep their version").ForOperators();
        api.MapDelete("/{name}", DeletePipeline).WithName("DeletePipeline" + nameSuffix).WithSummary("Delete a pipeline").ForOperators();
        return api;
    }

    /// <summary>GET /pipelines?prefix=&amp;resource=&amp;limit=&amp;cursor= — by name.</summary>
    public static async Task<Results<Ok<PipelinePage>, ProblemHttpResult>> ListPipelines(
        string? prefix, string? resource, int? limit, string? cursor, IObjectCatalog catalog, [AsParameters] ApiContext api)
    {
        if (Listing.Unavailable(catalog) is { } unavailable)
        {
            return unavailable;
        }

        var ns = api.Namespace;
        var type = Listing.Name(resource, "resource");
        var page = await catalog.ListAsync(ns, CatalogKind.Pipeline, type, Listing.Prefix(prefix), cursor, Listing.Limit(limit));
        var grains = api.Grains;
        var items = await Listing.LoadAsync(
            page.Members,
            name => grains.GetGrain<IPipelineGrain>(Names.PipelineKey(ns, name)).GetAsync(),
            p => type is null || p.ResourceType == type,
            name => grains.GetGrain<IPipelineGrain>(Names.PipelineKey(ns, name)).RepairCatalogAsync(type));
        return TypedResults.Ok(new PipelinePage { Items = [.. items.Select(p => PipelineMapping.ToDto(p, HookBase(api, p.Name)))], NextCursor = page.NextCursor });
    }

    /// <summary>POST /pipelines — 201 with the stored pipeline (<c>unchanged</c>, same revision, when it was exactly as stored).</summary>
    public static async Task<Created<Pipeline>> CreatePipeline([AsParameters] ApiContext api)
    {
        var spec = PipelineMapping.ToSpec(await api.ReadBodyAsync<Pipeline>());
        Names.Validate(spec.Name, "name");
        var written = await api.Grains.GetGrain<IPipelineGrain>(Names.PipelineKey(api.Namespace, spec.Name)).ApplyAsync(spec);
        return TypedResults.Created($"pipelines/{written.Value.Name}", PipelineMapping.ToDto(written.Value, HookBase(api, written.Value.Name)) with { Unchanged = written.Unchanged });
    }

    /// <summary>GET /pipelines/{name} — 200 or 404.</summary>
    public static async Task<Results<Ok<Pipeline>, ProblemHttpResult>> GetPipeline(string name, [AsParameters] ApiContext api)
    {
        Names.Validate(name, "name");
        var stored = await api.Grains.GetGrain<IPipelineGrain>(Names.PipelineKey(api.Namespace, name)).GetAsync();
        return stored is null ? Problems.NotFound($"pipeline {name} not found") : TypedResults.Ok(PipelineMapping.ToDto(stored, HookBase(api, stored.Name)));
    }

    /// <summary>PUT /pipelines/{name} — 200 (<c>unchanged</c>, same revision, when exactly as stored); the body's name must match the URL.</summary>
    public static async Task<Ok<Pipeline>> UpdatePipeline(string name, [AsParameters] ApiContext api)
    {
        Names.Validate(name, "name");
        var body = await api.ReadBodyAsync<Pipeline>();
        if (!string.IsNullOrEmpty(body.Name) && body.Name != name)
        {
            throw new ConveyorValidationException("name", "Pipeline name in URL and body do not match");
        }

        var spec = PipelineMapping.ToSpec(body with { Name = name });
        var written = await api.Grains.GetGrain<IPipelineGrain>(Names.PipelineKey(api.Namespace, name)).ApplyAsync(spec);
        return TypedResults.Ok(PipelineMapping.ToDto(written.Value, HookBase(api, written.Value.Name)) with { Unchanged = written.Unchanged });
    }

    private static string HookBase(ApiContext api, string pipeline) => $"{api.Settings.Prefix}/hooks/{api.Namespace}/{pipeline}";

    /// <summary>DELETE /pipelines/{name} — 204 or 404.</summary>
    public static async Task<Results<NoContent, ProblemHttpResult>> DeletePipeline(string name, [AsParameters] ApiContext api)
    {
        Names.Validate(name, "name");
        return await api.Grains.GetGrain<IPipelineGrain>(Names.PipelineKey(api.Namespace, name)).DeleteAsync()
            ? TypedResults.NoContent()
            : Problems.NotFound($"pipeline {name} not found");
    }
}
