using Conveyor.Client;
using Conveyor.Api.Http;
using Conveyor.Api.Security;
using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Runs;
using Conveyor.Grains.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;

namespace Conveyor.Api.Endpoints;

/// <summary>The namespace registry (admin). <c>default</c> always exists; objects of an unknown namespace are 404.</summary>
internal static class NamespacesApi
{
    /// <summary>Maps the routes onto <paramref name="routes"/>.</summary>
    public static RouteGroupBuilder MapNamespacesApi(this IEndpointRouteBuilder routes)
    {
        var api = routes.MapGroup("/namespaces").WithTags("Security");
        api.MapPost("/", CreateNamespace).Accepts<CreateNamespaceRequest>("application/json").WithName("CreateNamespace").WithSummary("Create a namespace").ForAdmins();
        api.MapGet("/", ListNamespaces).WithName("ListNamespaces").WithSummary("List namespaces").ForAdmins();
        api.MapGet("/{namespace}", GetNamespace).WithName("GetNamespace").WithSummary("Get a namespace").ForAdmins();
        api.MapDelete("/{namespace}", DeleteNamespace).WithName("DeleteNamespace")
            .WithSummary("Delete a namespace; 409 while it has runs unless cascade=true, which cancels its unfinished runs").ForAdmins();
        return api;
    }

    /// <summary>POST /namespaces — 201, or 409 when it exists.</summary>
    public static async Task<Created<NamespaceEntry>> CreateNamespace([AsParameters] ApiContext api)
    {
        var body = await api.ReadBodyAsync<CreateNamespaceRequest>();
        Names.Validate(body.Name, "name");
        var info = await Registry(api).CreateAsync(body.Name!);
        return TypedResults.Created($"namespaces/{info.Name}", ApiMapping.ToNamespace(info));
    }

    /// <summary>GET /namespaces — every namespace, <c>default</c> included.</summary>
    public static async Task<Ok<NamespaceList>> ListNamespaces([AsParameters] ApiContext api) =>
        TypedResults.Ok(new NamespaceList { Items = (await Registry(api).ListAsync()).Select(ApiMapping.ToNamespace).ToList() });

    /// <summary>GET /namespaces/{namespace} — 200 or 404.</summary>
    public static async Task<Results<Ok<NamespaceEntry>, ProblemHttpResult>> GetNamespace(string @namespace, [AsParameters] ApiContext api)
    {
        Names.Validate(@namespace, "namespace");
        var info = await Registry(api).GetAsync(@namespace);
        return info is null ? Problems.NotFound($"namespace {@namespace} not found") : TypedResults.Ok(ApiMapping.ToNamespace(info));
    }

    /// <summary>
    /// DELETE /namespaces/{namespace}?cascade= — 204 or 404; 409 for <c>default</c>, and while the namespace has runs
    /// unless <c>cascade=true</c>, which cancels every unfinished run (pending, queued, running).
    /// </summary>
    /// <remarks>
    /// The namespace is tombstoned first: from then on its routes answer 404, its webhooks and schedules start nothing
    /// and no run can be triggered in it, so the runs cancelled here are all there will be. A deletion interrupted
    /// half-way leaves the tombstone; repeating the request finishes it.
    /// </remarks>
    public static async Task<Results<NoContent, ProblemHttpResult>> DeleteNamespace(string @namespace, bool? cascade, IRunIndex index, [AsParameters] ApiContext api)
    {
        Names.Validate(@namespace, "namespace");
        if (@namespace == Names.DefaultNamespace)
        {
            return Problems.Conflict("the default namespace cannot be deleted");
        }

        var registry = Registry(api);
        var before = await registry.GetAsync(@namespace);
        if (before is null)
        {
            return Problems.NotFound($"namespace {@namespace} not found");
        }

        // A refusal stores nothing: the common case is decided before the tombstone...
        if (cascade != true && await HasRunsAsync(@namespace, index))
        {
            return HasRuns(@namespace);
        }

        if (!await registry.BeginDeleteAsync(@namespace))
        {
            return Problems.NotFound($"namespace {@namespace} not found");
        }

        if (index.IsAvailable)
        {
            // ...and a run started between that check and the tombstone takes it back.
            if (cascade != true && await HasRunsAsync(@namespace, index))
            {
                if (before.DeletingSince is null)
                {
                    await registry.RestoreAsync(@namespace);
                }

                return HasRuns(@namespace);
            }

            if (cascade == true)
            {
                // Twice: a trigger that checked the namespace just before the tombstone may store its run during the first pass.
                for (var pass = 0; pass < 2; pass++)
                {
                    await CancelUnfinishedAsync(@namespace, index, api);
                }
            }
        }

        return await registry.DeleteAsync(@namespace) ? TypedResults.NoContent() : Problems.NotFound($"namespace {@namespace} not found");
    }

    private static async Task<bool> HasRunsAsync(string ns, IRunIndex index) =>
        index.IsAvailable && (await index.ListAsync(ns, null, null, null, 1)).RunIds.Count > 0;

    private static ProblemHttpResult HasRuns(string ns) =>
        Problems.Conflict($"namespace {ns} has runs; delete with ?cascade=true to cancel its unfinished runs and delete it");

    private static async Task CancelUnfinishedAsync(string ns, IRunIndex index, ApiContext api)
    {
        foreach (var status in new[] { RunStatus.Pending, RunStatus.Queued, RunStatus.Running, RunStatus.Paused })
        {
            string? cursor = null;
            do
            {
                var page = await index.ListAsync(ns, null, status, cursor, 100);
                foreach (var runId in page.RunIds)
                {
                    try
                    {
                        await api.Grains.GetRunGrain(runId).CancelAsync($"namespace {ns} deleted", api.Http.CallerKey()?.Id);
                    }
                    catch (ConveyorConflictException)
                    {
                        // Ended meanwhile.
                    }
                }

                cursor = page.NextCursor;
            }
            while (cursor is not null);
        }
    }

    private static INamespaceRegistryGrain Registry(ApiContext api) => api.Grains.GetGrain<INamespaceRegistryGrain>(INamespaceRegistryGrain.Id);
}
