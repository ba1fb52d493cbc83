using Conveyor.Api.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;

// Extension classes live in Microsoft.Extensions.Hosting for discoverability, as Orleans' own do.
namespace Microsoft.Extensions.Hosting;

/// <summary>Serves a Conveyor host's metrics to Prometheus.</summary>
public static class ConveyorPrometheusExtensions
{
    /// <summary>
    /// Exports the host's metrics (Conveyor's among them) in Prometheus text format at
    /// <c>Conveyor:Telemetry:MetricsPath</c> (<c>/metrics</c>) under the prefix of <c>MapConveyorApi</c>, unless
    /// <c>Conveyor:Telemetry:Prometheus</c> is <c>false</c>. The endpoint needs no API key: it holds counts and
    /// durations, no object data. Idempotent.
    /// </summary>
    public static IConveyorBuilder AddPrometheusEndpoint(this IConveyorBuilder conveyor)
    {
        ArgumentNullException.ThrowIfNull(conveyor);
        var telemetry = conveyor.Options.Telemetry;
        if (!telemetry.Prometheus || conveyor.Services.Any(d => d.ServiceType == typeof(PrometheusMarker)))
        {
            return conveyor;
        }

        conveyor.Services.AddSingleton<PrometheusMarker>();
        conveyor.Services.AddOpenTelemetry().WithMetrics(metrics => metrics.AddPrometheusExporter());
        conveyor.Services.AddSingleton(new ConveyorRouteContribution((routes, options) =>
            routes.MapPrometheusScrapingEndpoint(options.Telemetry.MetricsPath).ExcludeFromDescription().AllowAnonymous()));
        return conveyor;
    }

    private sealed class PrometheusMarker;
}
