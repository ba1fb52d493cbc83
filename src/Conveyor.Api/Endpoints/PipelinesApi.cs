using Conveyor.Api.Http;
using Conveyor.Api.Security;
using Conveyor.Grains.Abstractions;
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
        api.MapPost("/", CreatePipeline).WithName("CreatePipeline" + nameSuffix).WithSummary("Create or replace a pipeline (upsert, as the original)").ForOperators();
        api.MapGet("/{name}", GetPipeline).WithName("GetPipeline" + nameSuffix).WithSummary("Get a pipeline").ForViewers();
        api.MapPut("/{name}", UpdatePipeline).WithName("UpdatePipeline" + nameSuffix).WithSummary("Replace a pipeline; runs in flight keep their version").ForOperators();
        api.MapDelete("/{name}", DeletePipeline).WithName("DeletePipeline" + nameSuffix).WithSummary("Delete a pipeline").ForOperators();
        return api;
    }

    /// <summary>POST /pipelines — 201 with the stored pipeline.</summary>
    public static async Task<Created<PipelineDto>> CreatePipeline([AsParameters] ApiContext api)
    {
        var spec = PipelineMapping.ToSpec(await api.ReadBodyAsync<PipelineDto>());
        Names.Validate(spec.Name, "name");
        var stored = await api.Grains.GetGrain<IPipelineGrain>(Names.PipelineKey(api.Namespace, spec.Name)).PutAsync(spec);
        return TypedResults.Created($"pipelines/{stored.Name}", PipelineMapping.ToDto(stored, HookBase(api, stored.Name)));
    }

    /// <summary>GET /pipelines/{name} — 200 or 404.</summary>
    public static async Task<Results<Ok<PipelineDto>, ProblemHttpResult>> GetPipeline(string name, [AsParameters] ApiContext api)
    {
        Names.Validate(name, "name");
        var stored = await api.Grains.GetGrain<IPipelineGrain>(Names.PipelineKey(api.Namespace, name)).GetAsync();
        return stored is null ? Problems.NotFound($"pipeline {name} not found") : TypedResults.Ok(PipelineMapping.ToDto(stored, HookBase(api, stored.Name)));
    }

    /// <summary>PUT /pipelines/{name} — 200; the body's name must match the URL.</summary>
    public static async Task<Ok<PipelineDto>> UpdatePipeline(string name, [AsParameters] ApiContext api)
    {
        Names.Validate(name, "name");
        var body = await api.ReadBodyAsync<PipelineDto>();
        if (!string.IsNullOrEmpty(body.Name) && body.Name != name)
        {
            throw new ConveyorValidationException("name", "Pipeline name in URL and body do not match");
        }

        var spec = PipelineMapping.ToSpec(body with { Name = name });
        var stored = await api.Grains.GetGrain<IPipelineGrain>(Names.PipelineKey(api.Namespace, name)).PutAsync(spec);
        return TypedResults.Ok(PipelineMapping.ToDto(stored, HookBase(api, stored.Name)));
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
