using Conveyor.Contracts;
using Conveyor.Grains.Telemetry;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Conveyor.UnitTests;

/// <summary>
/// Conveyor's telemetry as a guest in a host's process, without servers: the host is built, never started, so its
/// OpenTelemetry providers are resolved exactly as they would be at start.
/// </summary>
public sealed class TelemetryGuestTests
{
    private static WebApplication Build(Dictionary<string, string?> settings, Action<WebApplicationBuilder>? before = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Testing", ContentRootPath = AppContext.BaseDirectory });
        builder.Configuration.AddInMemoryCollection(settings);
        before?.Invoke(builder);
        // External servers that nobody starts: building the host connects to nothing.
        builder.AddConveyor(o =>
        {
            o.NatsUrl = "nats://127.0.0.1:1";
            o.RedisConnectionString = "127.0.0.1:1";
        });
        return builder.Build();
    }

    private static string? ServiceName(WebApplication app) =>
        app.Services.GetRequiredService<TracerProvider>().GetResource().Attributes.FirstOrDefault(a => a.Key == "service.name").Value as string;

    [Fact]
    public async Task An_embedding_hosts_service_name_is_kept()
    {
        await using var app = Build(
            new() { ["Conveyor:Telemetry:Tracing"] = "true" },
            builder => builder.Services.AddOpenTelemetry().ConfigureResource(r => r.AddService("shipyard")));
        Assert.Equal("shipyard", ServiceName(app));
    }

    [Fact]
    public async Task Otel_service_name_wins_over_conveyors_configured_default()
    {
        await using var app = Build(new()
        {
            ["Conveyor:Telemetry:Tracing"] = "true",
            ["Conveyor:Telemetry:ServiceName"] = "conveyor",
            ["OTEL_SERVICE_NAME"] = "conveyor-eu-1",
        });
        Assert.Equal("conveyor-eu-1", ServiceName(app));
    }

    [Fact]
    public async Task Conveyors_configured_service_name_applies_when_nothing_else_names_the_service()
    {
        await using var app = Build(new() { ["Conveyor:Telemetry:Tracing"] = "true", ["Conveyor:Telemetry:ServiceName"] = "conveyor" });
        Assert.Equal("conveyor", ServiceName(app));
    }

    [Fact]
    public async Task A_host_that_exports_with_UseOtlpExporter_starts_and_conveyor_adds_no_exporter_of_its_own()
    {
        // OpenTelemetry refuses signal-specific AddOtlpExporter beside UseOtlpExporter with NotSupportedException when
        // the providers are built; an Aspire service-defaults host sets exactly this up.
        await using var app = Build(
            new() { ["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:4317" },
            builder => builder.Services.AddOpenTelemetry().UseOtlpExporter());
        Assert.NotNull(app.Services.GetRequiredService<MeterProvider>());
        Assert.NotNull(app.Services.GetRequiredService<TracerProvider>());
    }

    [Fact]
    public void Step_duration_and_dispatch_latency_histograms_have_second_scale_buckets()
    {
        var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        using var metrics = new ConveyorMetrics(services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>());
        var exported = new List<Metric>();
        using var provider = Sdk.CreateMeterProviderBuilder().AddMeter(ConveyorTelemetry.Name).AddInMemoryExporter(exported).Build();

        // Three steps of 0.3 s, 2 s and 40 s, and a dispatch of 20 ms: each lands in a bucket of its own size.
        metrics.StepFinished("build", StepStatus.Succeeded, TimeSpan.FromSeconds(0.3));
        metrics.StepFinished("build", StepStatus.Succeeded, TimeSpan.FromSeconds(2));
        metrics.StepFinished("build", StepStatus.Succeeded, TimeSpan.FromSeconds(40));
        metrics.Dispatched("build", TimeSpan.FromMilliseconds(20));
        provider.ForceFlush();

        foreach (var name in new[] { "conveyor.step.duration", "conveyor.dispatch.latency" })
        {
            var metric = Assert.Single(exported, m => m.Name == name);
            var bounds = new List<double>();
            var counts = new Dictionary<double, long>();
            foreach (ref readonly var point in metric.GetMetricPoints())
            {
                foreach (var bucket in point.GetHistogramBuckets())
                {
                    bounds.Add(bucket.ExplicitBound);
                    counts[bucket.ExplicitBound] = counts.GetValueOrDefault(bucket.ExplicitBound) + bucket.BucketCount;
                }
            }

            Assert.Equal([.. MetricBuckets.Seconds, double.PositiveInfinity], bounds);
            if (name == "conveyor.step.duration")
            {
                Assert.Equal(1, counts[0.5]);
                Assert.Equal(1, counts[2.5]);
                Assert.Equal(1, counts[60]);
            }
            else
            {
                Assert.Equal(1, counts[0.025]);
            }
        }
    }
}
