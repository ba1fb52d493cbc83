using Conveyor.Api.Http;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Security;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Conveyor.Api.Security;

/// <summary>Answers 404 for every route under <c>/namespaces/{namespace}</c> whose namespace does not exist.</summary>
internal sealed class NamespaceFilter(IGrainFactory grains) : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var ns = context.HttpContext.GetRouteValue("namespace") as string;
        if (ns is not null)
        {
            if (!Names.IsValid(ns))
            {
                return Problems.BadRequest($"'namespace' must be a DNS label (got '{Names.Truncate(ns)}')", new Dictionary<string, string[]> { ["namespace"] = ["not a DNS label"] });
            }

            if (!await grains.GetGrain<INamespaceRegistryGrain>(INamespaceRegistryGrain.Id).ExistsAsync(ns).ConfigureAwait(false))
            {
                return Problems.NotFound($"namespace {ns} not found");
            }
        }

        return await next(context).ConfigureAwait(false);
    }
}
