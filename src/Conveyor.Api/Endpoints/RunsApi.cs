using Conveyor.Api.Http;
using Conveyor.Grains.Abstractions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;

namespace Conveyor.Api.Endpoints;

/// <summary>Runs: what the original lacks. A run is a real entity with a status, steps and attempts.</summary>
public static class RunsApi
{
    /// <summary>Maps the routes onto <paramref name="routes"/>; <paramref name="nameSuffix"/> keeps endpoint names unique when mapped twice.</summary>
    public static RouteGroupBuilder MapRunsApi(this IEndpointRouteBuilder routes, string nameSuffix = "")
    {
        var api = routes.MapGroup("/runs").WithTags("Runs");
        api.MapGet("/{id}", GetRun).WithName("GetRun" + nameSuffix).WithSummary("Get a run with its steps and every attempt");
        return api;
    }

    /// <summary>GET /runs/{id} — 200 or 404 (also when the run belongs to another namespace).</summary>
    public static async Task<Results<Ok<RunDto>, ProblemHttpResult>> GetRun(string id, [AsParameters] ApiContext api)
    {
        if (!Guid.TryParse(id, out var runId))
        {
            throw new ConveyorValidationException("id", $"'{Names.Truncate(id)}' is not a run id (UUID)");
        }

        var ns = api.Namespace;
        var run = await api.Grains.GetGrain<IPipelineRunGrain>(runId).GetAsync();
        return run is null || run.Plan.Namespace != ns
            ? Problems.NotFound($"run {runId} not found")
            : TypedResults.Ok(RunDto.From(run));
    }
}
