using Conveyor.Api.Http;
using Conveyor.Api.Security;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Runs;
using ArchivedRun = Conveyor.Client.ArchivedRun;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;

namespace Conveyor.Api.Endpoints;

/// <summary>The end of a run's life: deleting it now, and reading it back from the archive once retention deleted it.</summary>
internal static class LifecycleApi
{
    /// <summary>Maps <c>DELETE /runs/{id}</c> and <c>GET /archive/runs/{id}</c>.</summary>
    public static IEndpointRouteBuilder MapLifecycleApi(this IEndpointRouteBuilder routes, string nameSuffix = "")
    {
        routes.MapDelete("/runs/{id}", DeleteRun).WithTags("Runs").WithName("DeleteRun" + nameSuffix)
            .WithSummary("Delete a finished run now: archived first, then its logs, index entries and record; 409 while it runs").ForOperators();
        routes.MapGet("/archive/runs/{id}", GetArchivedRun).WithTags("Runs").WithName("GetArchivedRun" + nameSuffix)
            .WithSummary("A run retention deleted, as the archive keeps it").ForViewers();
        return routes;
    }

    /// <summary>DELETE /runs/{id} — 204; 404 when there is no such run (in this namespace); 409 while it has not ended.</summary>
    public static async Task<NoContent> DeleteRun(string id, [AsParameters] ApiContext api)
    {
        var runId = ParseId(id);
        var grain = api.Grains.GetRunGrain(runId);
        RunState? run;
        try
        {
            run = await grain.GetAsync();
        }
        catch (RunUnreadableException) when (api.Namespace == Names.DefaultNamespace)
        {
            // Its namespace cannot be read either: only the original (default-namespace) route removes it.
            await grain.DeleteAsync();
            return TypedResults.NoContent();
        }

        if (run is null || run.Plan.Namespace != api.Namespace || !await grain.DeleteAsync())
        {
            throw new ConveyorNotFoundException($"run {runId} not found");
        }

        return TypedResults.NoContent();
    }

    /// <summary>GET /archive/runs/{id} — the archived run; 404 when the archive holds none (in this namespace).</summary>
    public static async Task<Ok<ArchivedRun>> GetArchivedRun(string id, IRunArchive archive, [AsParameters] ApiContext api)
    {
        var runId = ParseId(id);
        var archived = archive.IsEnabled ? await archive.GetAsync(api.Namespace, runId, api.Http.RequestAborted) : null;
        return archived is null
            ? throw new ConveyorNotFoundException($"run {runId} is not in the archive")
            : TypedResults.Ok(new ArchivedRun { ArchivedAt = archived.ArchivedAt, Complete = archived.Complete, Run = ApiMapping.ToRunInfo(archived.Run) });
    }

    private static Guid ParseId(string id) =>
        Guid.TryParse(id, out var runId) ? runId : throw new ConveyorValidationException("id", $"'{Names.Truncate(id)}' is not a run id (UUID)");
}
