using System.Diagnostics.Metrics;
using Conveyor.Grains.Telemetry;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using NATS.Client.OpenTelemetry;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Conveyor.Api.Hosting;

/// <summary>
/// Conveyor's OpenTelemetry wiring, as a guest in the host's process: its meters (engine, Orleans, the NATS client's
/// through NATS.Client.OpenTelemetry, .NET runtime) and activity sources join whatever metrics and tracing the host sets up, without creating either unless
/// Conveyor itself exports (OTLP, or the Prometheus endpoint of Conveyor.Prometheus); it names the service only when
/// nothing else does.
/// </summary>
internal static class ConveyorTelemetrySetup
{
    /// <summary>The OpenTelemetry environment variables Conveyor honours (read through the host's configuration).</summary>
    internal const string OtlpEndpointVariable = "OTEL_EXPORTER_OTLP_ENDPOINT";

    /// <inheritdoc cref="OtlpEndpointVariable"/>
    internal const string ServiceNameVariable = "OTEL_SERVICE_NAME";

    /// <inheritdoc cref="OtlpEndpointVariable"/>
    internal const string ResourceAttributesVariable = "OTEL_RESOURCE_ATTRIBUTES";

    /// <summary>Meters Conveyor adds to the host's meter provider.</summary>
    internal static readonly string[] Meters =
    [
        ConveyorTelemetry.Name,
        ConveyorTelemetry.Name + ".*",
        // Orleans' own instruments: grain activations, messaging, membership.
        "Microsoft.Orleans",
        // GC, allocations, thread pool, exceptions: what an operator of a .NET service looks at first, and what the
        // benchmark reads allocations per step from.
        "System.Runtime",
    ];

    public static void Add(IServiceCollection services, ConveyorTelemetryOptions telemetry, IConfiguration configuration)
    {
        var otel = services.AddOpenTelemetry();
        services.ConfigureOpenTelemetryMeterProvider(AddInstruments);
        services.ConfigureOpenTelemetryMeterProvider(KeepOwnMeters);
        // Not NATS.Net's tracing: its publish span replaces the traceparent header that Conveyor puts on a dispatch or
        // result, which detaches the driver's spans from the run's trace whenever a publish is not made under the
        // dispatch span (an outbox replay, a timer). Conveyor's own producer and consumer spans cover each message.
        services.ConfigureOpenTelemetryTracerProvider(tracing => tracing.AddSource(ConveyorTelemetry.Name, ConveyorTelemetry.Name + ".*"));

        if (!string.IsNullOrWhiteSpace(telemetry.ServiceName))
        {
            // A default only: OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) wins over it.
            otel.ConfigureResource(resource => resource.AddDetector(sp => new DefaultServiceName(sp.GetRequiredService<IConfiguration>(), telemetry.ServiceName)));
        }

        var otlp = OtlpExport(services, telemetry, configuration);
        if (otlp is not OtlpSource.None)
        {
            otel.WithMetrics(metrics => metrics.AddOtlpExporter((exporter, reader) =>
            {
                Configure(exporter, telemetry, otlp, "v1/metrics");
                if (otlp is OtlpSource.Options)
                {
                    // From the environment, the SDK's OTEL_METRIC_EXPORT_INTERVAL applies.
                    reader.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = (int)telemetry.OtlpMetricsInterval.TotalMilliseconds;
                }
            }));
        }

        // Traces only when asked for or exported: recording every request's spans with nobody to read them only costs.
        if (telemetry.Tracing || otlp is not OtlpSource.None)
        {
            otel.WithTracing(tracing =>
            {
                tracing.AddAspNetCoreInstrumentation();
                if (otlp is not OtlpSource.None)
                {
                    tracing.AddOtlpExporter(exporter => Configure(exporter, telemetry, otlp, "v1/traces"));
                }
            });
        }
    }

    private static void AddInstruments(MeterProviderBuilder metrics) => metrics.AddMeter(Meters).AddNatsClientInstrumentation();

    /// <summary>
    /// Meters are matched by name across the whole process: a second Conveyor host in it (embedding, tests) has a meter
    /// of the same name from its own <see cref="IMeterFactory"/>. Only this host's go into its metrics; otherwise its
    /// scrape shows the other host's runs, and duplicate instruments can hide its own.
    /// </summary>
    private static void KeepOwnMeters(IServiceProvider services, MeterProviderBuilder metrics)
    {
        var own = services.GetRequiredService<IMeterFactory>();
        metrics.AddView(instrument => instrument.Meter.Scope is IMeterFactory factory && !ReferenceEquals(factory, own) ? MetricStreamConfiguration.Drop : null);
    }

    private enum OtlpSource
    {
        None,
        Options,
        Environment,
    }

    /// <summary>
    /// Where OTLP export is configured: Conveyor's own <c>OtlpEndpoint</c>, else <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> —
    /// unless the host already exports everything with <c>UseOtlpExporter()</c> (Conveyor's signals then go out
    /// through the host's exporter; OpenTelemetry refuses both on one service collection).
    /// </summary>
    private static OtlpSource OtlpExport(IServiceCollection services, ConveyorTelemetryOptions telemetry, IConfiguration configuration)
    {
        if (telemetry.OtlpEndpoint is not null)
        {
            return OtlpSource.Options;
        }

        if (!telemetry.OtlpFromEnvironment || string.IsNullOrWhiteSpace(configuration[OtlpEndpointVariable]))
        {
            return OtlpSource.None;
        }

        return services.Any(d => d.ServiceType.Name == "UseOtlpExporterRegistration") ? OtlpSource.None : OtlpSource.Environment;
    }

    /// <summary>
    /// Points an exporter at Conveyor's configured endpoint. An endpoint set in code is used as is, so for OTLP/HTTP the
    /// signal's path is appended here (the SDK appends it only to an endpoint from its environment variables, which it
    /// reads itself when the endpoint comes from there).
    /// </summary>
    private static void Configure(OtlpExporterOptions exporter, ConveyorTelemetryOptions telemetry, OtlpSource source, string signalPath)
    {
        if (source is not OtlpSource.Options || telemetry.OtlpEndpoint is not { } endpoint)
        {
            return;
        }

        if (telemetry.OtlpProtocol == ConveyorOtlpProtocol.HttpProtobuf)
        {
            exporter.Protocol = OtlpExportProtocol.HttpProtobuf;
            exporter.Endpoint = new Uri(endpoint.AbsoluteUri.TrimEnd('/') + "/" + signalPath);
        }
        else
        {
            exporter.Protocol = OtlpExportProtocol.Grpc;
            exporter.Endpoint = endpoint;
        }
    }

    /// <summary><c>service.name</c> from Conveyor's options when the environment names no service.</summary>
    private sealed class DefaultServiceName(IConfiguration configuration, string name) : IResourceDetector
    {
        public Resource Detect()
        {
            if (!string.IsNullOrWhiteSpace(configuration[ServiceNameVariable])
                || (configuration[ResourceAttributesVariable] ?? "").Split(',').Any(a => a.Trim().StartsWith("service.name=", StringComparison.Ordinal)))
            {
                return Resource.Empty;
            }

            return new Resource([new KeyValuePair<string, object>("service.name", name)]);
        }
    }
}
