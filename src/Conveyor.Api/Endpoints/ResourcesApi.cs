using System.Text.Json;
using Conveyor.Client;
using Conveyor.Api.Http;
using Conveyor.Api.Security;
using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Catalog;
using Conveyor.Grains.Resources;
using Conveyor.Grains.Runs;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;

namespace Conveyor.Api.Endpoints;

/// <summary>Resources: the original's routes. Creating a resource starts its pipeline's run.</summary>
internal static class ResourcesApi
{
    /// <summary>Maps the routes onto <paramref name="routes"/>; <paramref name="nameSuffix"/> keeps endpoint names unique when mapped twice.</summary>
    public static RouteGroupBuilder MapResourcesApi(this IEndpointRouteBuilder routes, string nameSuffix = "")
    {
        var api = routes.MapGroup("/resources").WithTags("Resources");
        api.MapPost("/", CreateResource).Accepts<CreateResourceRequest>("application/json").WithName("CreateResource" + nameSuffix).WithSummary("Create a resource and start its pipeline run").ForOperators();
        api.MapGet("/", ListResources).WithName("ListResources" + nameSuffix).WithSummary("List resources of every type (by type, then name), cursor-paged, optionally by pipeline").ForViewers();
        api.MapGet("/{type}", ListResourcesOfType).WithName("ListResourcesOfType" + nameSuffix).WithSummary("List the resources of one type by name, cursor-paged, optionally by name prefix and pipeline").ForViewers();
        api.MapGet("/{type}/{name}", GetResource).WithName("GetResource" + nameSuffix).WithSummary("Get a resource with its driver results").ForViewers();
        api.MapPut("/{type}/{name}", UpdateResource).Accepts<Resource>("application/json").WithName("UpdateResource" + nameSuffix).WithSummary("Replace a resource's spec and metadata").ForOperators();
        api.MapDelete("/{type}/{name}", DeleteResource).WithName("DeleteResource" + nameSuffix).WithSummary("Delete a resource with all its versions").ForOperators();
        api.MapGet("/{type}/{name}/{version:int}", GetResourceVersion).WithName("GetResourceVersion" + nameSuffix).WithSummary("Get a resource as it was at a version").ForViewers();
        return api;
    }

    /// <summary>POST /resources — 201 with the run id.</summary>
    public static async Task<Created<CreateResourceResponse>> CreateResource([AsParameters] ApiContext api)
    {
        var body = await api.ReadBodyAsync<CreateResourceRequest>();
        if (string.IsNullOrEmpty(body.ResourceType))
        {
            throw new ConveyorValidationException("resource", "Resource type is required");
        }

        Names.Validate(body.ResourceType, "resource");
        Names.Validate(body.Name, "name");
        var runId = Guid.NewGuid();
        var result = await api.Grains
            .GetGrain<IResourceGrain>(Names.ResourceKey(api.Namespace, body.ResourceType, body.Name))
            .CreateAsync(ToData(new Resource { Name = body.Name, ResourceType = body.ResourceType, Pipeline = body.Pipeline, Spec = body.Spec }), runId);
        return TypedResults.Created(
            $"resources/{result.Resource.Type}/{result.Resource.Name}",
            new CreateResourceResponse { Message = "Resource created successfully", Name = result.Resource.Name, RunId = result.RunId, Version = "1" });
    }

    /// <summary>
    /// GET /resources?pipeline=&amp;limit=&amp;cursor= — every type's resources, by type then name. (The original
    /// answers 400 "Resource type is required" here, its list handler being broken.)
    /// </summary>
    public static Task<Results<Ok<ResourcePage>, ProblemHttpResult>> ListResources(
        string? pipeline, int? limit, string? cursor, IObjectCatalog catalog, [AsParameters] ApiContext api) =>
        ListAsync(null, null, pipeline, limit, cursor, catalog, api);

    /// <summary>GET /resources/{type}?prefix=&amp;pipeline=&amp;limit=&amp;cursor= — one type's resources, by name.</summary>
    public static Task<Results<Ok<ResourcePage>, ProblemHttpResult>> ListResourcesOfType(
        string type, string? prefix, string? pipeline, int? limit, string? cursor, IObjectCatalog catalog, [AsParameters] ApiContext api)
    {
        Names.Validate(type, "type");
        return ListAsync(type, Listing.Prefix(prefix), pipeline, limit, cursor, catalog, api);
    }

    private static async Task<Results<Ok<ResourcePage>, ProblemHttpResult>> ListAsync(
        string? type, string? prefix, string? pipeline, int? limit, string? cursor, IObjectCatalog catalog, ApiContext api)
    {
        if (Listing.Unavailable(catalog) is { } unavailable)
        {
            return unavailable;
        }

        var ns = api.Namespace;
        var byPipeline = Listing.Name(pipeline, "pipeline");
        var range = type is null ? null : type + "/" + prefix;
        var page = await catalog.ListAsync(ns, CatalogKind.Resource, byPipeline, range, cursor, Listing.Limit(limit));
        var grains = api.Grains;
        IResourceGrain Of(string member) => grains.GetGrain<IResourceGrain>($"{ns}/{member}");
        var items = await Listing.LoadAsync(
            page.Members,
            async member => (await Of(member).GetAsync()).Resource,
            r => byPipeline is null || r.Pipeline == byPipeline,
            member => Of(member).RepairCatalogAsync(byPipeline));
        return TypedResults.Ok(new ResourcePage { Items = [.. items.Select(r => ResourceGrain.ToWire(r))], NextCursor = page.NextCursor });
    }

    /// <summary>GET /resources/{type}/{name} — 200 (with <c>driverresults.*</c> of its latest run) or 404.</summary>
    public static async Task<Results<Ok<Resource>, ProblemHttpResult>> GetResource(string type, string name, [AsParameters] ApiContext api)
    {
        var (resource, lastRunId) = await Grain(api, type, name).GetAsync();
        if (resource is null)
        {
            return Problems.NotFound($"resource with name {name} and type {type} not found");
        }

        var results = lastRunId is { } runId ? await api.Grains.GetRunGrain(runId).GetDriverResultsAsync() : null;
        return TypedResults.Ok(ResourceGrain.ToWire(resource, results));
    }

    /// <summary>
    /// PUT /resources/{type}/{name} — 200 with the new version, or 404. A resource exactly as stored (or as a read
    /// shows it) is <c>unchanged</c>: same version, its driver results kept. No update starts a run (as the original).
    /// </summary>
    public static async Task<Ok<Resource>> UpdateResource(string type, string name, [AsParameters] ApiContext api)
    {
        var grain = Grain(api, type, name);
        var body = await api.ReadBodyAsync<Resource>();
        var written = await grain.UpdateAsync(ToData(body));
        return TypedResults.Ok(ResourceGrain.ToWire(written.Value) with { Unchanged = written.Unchanged });
    }

    /// <summary>DELETE /resources/{type}/{name} — 204, also when absent (idempotent, as the original).</summary>
    public static async Task<NoContent> DeleteResource(string type, string name, [AsParameters] ApiContext api)
    {
        await Grain(api, type, name).DeleteAsync();
        return TypedResults.NoContent();
    }

    /// <summary>GET /resources/{type}/{name}/{version} — 200 or 404.</summary>
    public static async Task<Results<Ok<Resource>, ProblemHttpResult>> GetResourceVersion(string type, string name, int version, [AsParameters] ApiContext api)
    {
        var stored = await Grain(api, type, name).GetVersionAsync(version);
        return stored is null
            ? Problems.NotFound($"resource with name {name}, type {type} and version {version} not found")
            : TypedResults.Ok(ResourceGrain.ToWire(stored));
    }

    private static IResourceGrain Grain(ApiContext api, string type, string name)
    {
        Names.Validate(type, "type");
        Names.Validate(name, "name");
        return api.Grains.GetGrain<IResourceGrain>(Names.ResourceKey(api.Namespace, type, name));
    }

    private static ResourceData ToData(Resource body) => new()
    {
        Name = body.Name,
        Type = body.ResourceType,
        Pipeline = body.Pipeline,
        Metadata = body.Metadata is null ? [] : new Dictionary<string, string>(body.Metadata, StringComparer.Ordinal),
        Spec = body.Spec is { ValueKind: not JsonValueKind.Undefined } spec ? spec.GetRawText() : "null",
    };
}
