using Conveyor.Client;
using Conveyor.Api.Hosting;
using Conveyor.Api.Http;
using Conveyor.Api.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;

namespace Conveyor.Api.Endpoints;

/// <summary>Root, liveness and readiness routes.</summary>
internal static class SystemApi
{
    /// <summary>Maps the routes onto <paramref name="routes"/>.</summary>
    public static IEndpointRouteBuilder MapSystemApi(this IEndpointRouteBuilder routes)
    {
        routes.MapGet("/", Root).WithName("Root").WithTags("System").ExcludeFromDescription().Anonymous();
        routes.MapGet("/health", Health).WithName("Health").WithTags("System").WithSummary("The original's health route").Anonymous();
        routes.MapGet("/healthz", Health).WithName("Healthz").WithTags("System").WithSummary("Liveness: the process answers").Anonymous();
        routes.MapGet("/readyz", Ready).WithName("Readyz").WithTags("System").WithSummary("Readiness: NATS connected, Redis reachable, silo an active member, not shutting down").Anonymous();
        return routes;
    }

    /// <summary>GET / — the original's banner.</summary>
    public static string Root() => "CONVEYOR API SERVER";

    /// <summary>GET /health — <c>{"status":"healthy","time":&lt;unix seconds&gt;}</c>.</summary>
    public static Ok<HealthStatus> Health(TimeProvider time) => TypedResults.Ok(new HealthStatus { Time = time.GetUtcNow().ToUnixTimeSeconds() });

    /// <summary>
    /// GET /readyz — 200 when NATS is connected, Redis answers, this silo is an active cluster member and not shutting
    /// down; otherwise 503 ProblemDetails whose detail names what is down.
    /// </summary>
    public static async Task<Results<Ok<HealthStatus>, ProblemHttpResult>> Ready(ConveyorReadiness readiness, TimeProvider time, CancellationToken cancellationToken)
    {
        var problems = await readiness.CheckAsync(cancellationToken).ConfigureAwait(false);
        return problems.Count == 0
            ? TypedResults.Ok(new HealthStatus { Status = "ready", Time = time.GetUtcNow().ToUnixTimeSeconds() })
            : Problems.Create(StatusCodes.Status503ServiceUnavailable, "not-ready", "Not ready.", string.Join("; ", problems));
    }
}
