using Conveyor.Api.Hosting;
using Conveyor.Api.Http;
using Conveyor.Grains.Abstractions;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Conveyor.Api.Endpoints;

/// <summary>What every Conveyor handler needs: the grain factory, the HTTP context and the API options.</summary>
internal readonly struct ApiContext
{
    /// <summary>Creates the context (bound by <c>[AsParameters]</c>).</summary>
    public ApiContext(IGrainFactory grains, HttpContext http, ConveyorApiSettings settings)
    {
        Grains = grains;
        Http = http;
        Settings = settings;
    }

    /// <summary>Grain factory of the cluster.</summary>
    public IGrainFactory Grains { get; }

    /// <summary>The request.</summary>
    public HttpContext Http { get; }

    /// <summary>API settings.</summary>
    public ConveyorApiSettings Settings { get; }

    /// <summary>
    /// The namespace of the request: the <c>{namespace}</c> route value of the namespaced routes, or
    /// <see cref="Names.DefaultNamespace"/> on the original routes.
    /// </summary>
    public string Namespace
    {
        get
        {
            var ns = Http.GetRouteValue("namespace") as string ?? Names.DefaultNamespace;
            Names.Validate(ns, "namespace");
            return ns;
        }
    }

    /// <summary>Reads the JSON body with the configured size limit.</summary>
    public Task<T> ReadBodyAsync<T>()
        where T : class => JsonBody.ReadAsync<T>(Http.Request, Settings.MaxRequestBodyBytes, Http.RequestAborted);
}
