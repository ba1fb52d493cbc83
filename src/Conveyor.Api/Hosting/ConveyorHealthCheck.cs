using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Conveyor.Api.Hosting;

/// <summary>
/// Conveyor's readiness (what <c>/readyz</c> checks) as a health check named <c>conveyor</c>, so a host's own health
/// endpoint (<c>app.MapHealthChecks(…)</c>) reports Conveyor's state with its own checks.
/// </summary>
internal sealed class ConveyorHealthCheck(ConveyorReadiness readiness) : IHealthCheck
{
    /// <summary>Name of the check.</summary>
    public const string Name = "conveyor";

    /// <summary>Tags of the check: a host can select Conveyor's check, or every readiness check, by tag.</summary>
    public static readonly string[] Tags = ["conveyor", "ready"];

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        var problems = await readiness.CheckAsync(cancellationToken).ConfigureAwait(false);
        return problems.Count == 0
            ? HealthCheckResult.Healthy("NATS connected, Redis reachable, silo active")
            : new HealthCheckResult(context.Registration.FailureStatus, string.Join("; ", problems));
    }
}
