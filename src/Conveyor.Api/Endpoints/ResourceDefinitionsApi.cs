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

/// <summary>Resource definitions: the original's routes.</summary>
internal static class ResourceDefinitionsApi
{
    /// <summary>Maps the routes onto <paramref name="routes"/>; <paramref name="nameSuffix"/> keeps endpoint names unique when mapped twice.</summary>
    public static RouteGroupBuilder MapResourceDefinitionsApi(this IEndpointRouteBuilder routes, string nameSuffix = "")
    {
        var api = routes.MapGroup("/resource-definitions").WithTags("Resource definitions");
        api.MapGet("/", ListDefinitions).WithName("ListResourceDefinitions" + nameSuffix).WithSummary("List resource definitions by name, cursor-paged, optionally by name prefix").ForViewers();
        api.MapPost("/", CreateDefinition).Accepts<ResourceDefinition>("application/json").WithName("CreateResourceDefinition" + nameSuffix).WithSummary("Create a resource definition").ForOperators();
        api.MapPost("/apply", ApplyDefinition).Accepts<ResourceDefinition>("application/json").WithName("ApplyResourceDefinition" + nameSuffix).WithSummary("Create or replace a resource definition").ForOperators();
        api.MapGet("/{name}", GetDefinition).WithName("GetResourceDefinition" + nameSuffix).WithSummary("Get a resource definition").ForViewers();
        api.MapPut("/{name}", UpdateDefinition).Accepts<ResourceDefinition>("application/json").WithName("UpdateResourceDefinition" + nameSuffix).WithSummary("Replace a resource definition").ForOperators();
        api.MapDelete("/{name}", DeleteDefinition).WithName("DeleteResourceDefinition" + nameSuffix).WithSummary("Delete a resource definition").ForOperators();
        return api;
    }

    /// <summary>GET /resource-definitions?prefix=&amp;limit=&amp;cursor= — by name.</summary>
    public static async Task<Results<Ok<ResourceDefinitionPage>, ProblemHttpResult>> ListDefinitions(
        string? prefix, int? limit, string? cursor, IObjectCatalog catalog, [AsParameters] ApiContext api)
    {
        if (Listing.Unavailable(catalog) is { } unavailable)
        {
            return unavailable;
        }

        var ns = api.Namespace;
        var page = await catalog.ListAsync(ns, CatalogKind.Definition, null, Listing.Prefix(prefix), cursor, Listing.Limit(limit));
        var items = await Listing.LoadAsync(
            page.Members,
            name => Grain(api, name).GetAsync(),
            _ => true,
            name => Grain(api, name).RepairCatalogAsync());
        return TypedResults.Ok(new ResourceDefinitionPage { Items = [.. items.Select(ApiMapping.ToDefinition)], NextCursor = page.NextCursor });
    }

    /// <summary>POST /resource-definitions — 201, or 409 when the name exists.</summary>
    public static async Task<Created<ResourceDefinition>> CreateDefinition([AsParameters] ApiContext api)
    {
        var body = await api.ReadBodyAsync<ResourceDefinition>();
        var data = ToData(body);
        var stored = await Grain(api, data.Name).CreateAsync(data);
        return TypedResults.Created($"resource-definitions/{stored.Name}", ApiMapping.ToDefinition(stored));
    }

    /// <summary>POST /resource-definitions/apply — 201 (create or replace), as the original; <c>unchanged</c> when nothing was stored.</summary>
    public static async Task<Created<ResourceDefinition>> ApplyDefinition([AsParameters] ApiContext api)
    {
        var body = await api.ReadBodyAsync<ResourceDefinition>();
        if (string.IsNullOrEmpty(body.Name))
        {
            throw new ConveyorValidationException("name", "Resource name is required");
        }

        var data = ToData(body);
        var written = await Grain(api, data.Name).ApplyAsync(data);
        return TypedResults.Created($"resource-definitions/{written.Value.Name}", ApiMapping.ToDefinition(written.Value) with { Unchanged = written.Unchanged });
    }

    /// <summary>GET /resource-definitions/{name} — 200 or 404.</summary>
    public static async Task<Results<Ok<ResourceDefinition>, ProblemHttpResult>> GetDefinition(string name, [AsParameters] ApiContext api)
    {
        Names.Validate(name, "name");
        var stored = await Grain(api, name).GetAsync();
        return stored is null
            ? Problems.NotFound($"resource definition with name {name} not found")
            : TypedResults.Ok(ApiMapping.ToDefinition(stored));
    }

    /// <summary>PUT /resource-definitions/{name} — 200 (<c>unchanged</c> when nothing was stored) or 404. The body's name must match the URL.</summary>
    public static async Task<Ok<ResourceDefinition>> UpdateDefinition(string name, [AsParameters] ApiContext api)
    {
        Names.Validate(name, "name");
        var body = await api.ReadBodyAsync<ResourceDefinition>();
        var data = ToData(body with { Name = string.IsNullOrEmpty(body.Name) ? name : body.Name });
        var written = await Grain(api, name).UpdateAsync(data);
        return TypedResults.Ok(ApiMapping.ToDefinition(written.Value) with { Unchanged = written.Unchanged });
    }

    /// <summary>DELETE /resource-definitions/{name} — 204 or 404.</summary>
    public static async Task<Results<NoContent, ProblemHttpResult>> DeleteDefinition(string name, [AsParameters] ApiContext api)
    {
        Names.Validate(name, "name");
        return await Grain(api, name).DeleteAsync()
            ? TypedResults.NoContent()
            : Problems.NotFound($"resource definition with name {name} not found");
    }

    private static IResourceDefinitionGrain Grain(ApiContext api, string name)
    {
        Names.Validate(name, "name");
        return api.Grains.GetGrain<IResourceDefinitionGrain>(Names.DefinitionKey(api.Namespace, name));
    }

    private static ResourceDefinitionData ToData(ResourceDefinition body) => new()
    {
        Name = body.Name ?? "",
        Description = body.Description ?? "",
        Version = body.Version ?? "",
        Schema = body.Schema is { ValueKind: not System.Text.Json.JsonValueKind.Null and not System.Text.Json.JsonValueKind.Undefined } s ? s.GetRawText() : null,
    };
}
