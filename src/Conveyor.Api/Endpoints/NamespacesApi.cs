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
    /// unless <c>cascade=true</c>, which first cancels every unfinished run.
    /// </summary>
    public static async Task<Results<NoContent, ProblemHttpResult>> DeleteNamespace(string @namespace, bool? cascade, IRunIndex index, [AsParameters] ApiContext api)
    {
        Names.Validate(@namespace, "namespace");
        if (@namespace == Names.DefaultNamespace)
        {
            return Problems.Conflict("the default namespace cannot be deleted");
        }

        if (await Registry(api).GetAsync(@namespace) is null)
        {
            return Problems.NotFound($"namespace {@namespace} not found");
        }

        if (index.IsAvailable)
        {
            var any = await index.ListAsync(@namespace, null, null, null, 1);
            if (any.RunIds.Count > 0 && cascade != true)
            {
                return Problems.Conflict($"namespace {@namespace} has runs; delete with ?cascade=true to cancel its unfinished runs and delete it");
            }

            if (cascade == true)
            {
                foreach (var status in new[] { RunStatus.Pending, RunStatus.Running })
                {
                    string? cursor = null;
                    do
                    {
                        var page = await index.ListAsync(@namespace, null, status, cursor, 100);
                        foreach (var runId in page.RunIds)
                        {
                            try
                            {
                                await api.Grains.GetGrain<IPipelineRunGrain>(runId).CancelAsync($"namespace {@namespace} deleted");
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
        }

        return await Registry(api).DeleteAsync(@namespace) ? TypedResults.NoContent() : Problems.NotFound($"namespace {@namespace} not found");
    }

    private static INamespaceRegistryGrain Registry(ApiContext api) => api.Grains.GetGrain<INamespaceRegistryGrain>(INamespaceRegistryGrain.Id);
}
