using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.Json;
using Conveyor.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Conveyor.IntegrationTests;

/// <summary>
/// An app that embeds Conveyor and has its own endpoints, OpenAPI document, health checks and OpenTelemetry
/// environment: Conveyor joins them and takes nothing over.
/// </summary>
public sealed class EmbeddingGuestFixture : IAsyncLifetime
{
    private NatsServerProcess? _nats;
    private RedisServerProcess? _redis;
    private WebApplication? _collector;

    public ConveyorTestHost Host { get; private set; } = null!;

    /// <summary>Every request the loopback OTLP collector received: method and path, and body.</summary>
    public ConcurrentQueue<(string Path, byte[] Body)> OtlpRequests { get; } = new();

    public const string ServiceName = "shipyard-from-env";

    public async Task InitializeAsync()
    {
        _nats = await NatsServerProcess.StartNewAsync();
        _redis = await RedisServerProcess.StartNewAsync();
        var collector = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Testing", ContentRootPath = AppContext.BaseDirectory });
        collector.Logging.ClearProviders();
        collector.WebHost.UseUrls("http://127.0.0.1:0");
        _collector = collector.Build();
        _collector.Run(async context =>
        {
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            OtlpRequests.Enqueue(($"{context.Request.Method} {context.Request.Path}", body.ToArray()));
            context.Response.ContentType = "application/x-protobuf";
        });
        await _collector.StartAsync();
        var otlp = _collector.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();

        // The OpenTelemetry SDK's own variables, as a container or an Aspire AppHost would set them; Conveyor's
        // default service name is set too, and must lose to OTEL_SERVICE_NAME.
        Host = await ConveyorTestHost.StartAsync(
            _nats.Url,
            _redis.ConnectionString,
            "guest-" + Guid.NewGuid().ToString("N")[..8],
            new Dictionary<string, string?>
            {
                ["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp,
                ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
                ["OTEL_METRIC_EXPORT_INTERVAL"] = "500",
                ["OTEL_SERVICE_NAME"] = ServiceName,
                ["Conveyor:Telemetry:ServiceName"] = "conveyor",
            },
            builder =>
            {
                builder.Services.AddOpenApi();
                builder.Services.AddHealthChecks();
            },
            app =>
            {
                app.MapGet("/hello", () => "hello from the host").WithName("HostHello");
                app.MapOpenApi();
                app.MapHealthChecks("/host-health");
            });
    }

    public async Task DisposeAsync()
    {
        await Disposal.InOrderAsync(Host, _redis, _nats);
        if (_collector is not null)
        {
            await _collector.DisposeAsync();
        }
    }
}

public sealed class EmbeddingGuestTests(EmbeddingGuestFixture fx) : IClassFixture<EmbeddingGuestFixture>
{
    private static HashSet<string> Paths(string openApiJson) =>
        JsonDocument.Parse(openApiJson).RootElement.GetProperty("paths").EnumerateObject().Select(p => p.Name).ToHashSet();

    [Fact]
    public async Task The_hosts_openapi_document_has_only_its_routes_and_conveyors_only_conveyors()
    {
        var host = Paths(await fx.Host.Http.GetStringAsync("/openapi/v1.json"));
        var conveyor = Paths(await fx.Host.Http.GetStringAsync("/openapi/conveyor.json"));

        Assert.Equal(["/hello"], host);
        Assert.DoesNotContain("/hello", conveyor);
        Assert.Contains("/pipelines", conveyor);
        Assert.Contains("/runs/{id}", conveyor);
    }

    [Fact]
    public void Conveyor_adds_no_data_protection_key_ring_the_host_did_not_ask_for()
    {
        // The API key scheme needs no cookies; a key ring would be created (and written to the user's profile) at every start.
        Assert.Null(fx.Host.Services.GetService<Microsoft.AspNetCore.DataProtection.IDataProtectionProvider>());
        Assert.DoesNotContain(fx.Host.Services.GetServices<Microsoft.Extensions.Hosting.IHostedService>(), s => s.GetType().Namespace?.StartsWith("Microsoft.AspNetCore.DataProtection", StringComparison.Ordinal) == true);
    }

    [Fact]
    public async Task The_hosts_health_endpoint_includes_conveyors_readiness()
    {
        using var response = await fx.Host.Http.GetAsync("/host-health");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("Healthy", await response.Content.ReadAsStringAsync());

        var health = fx.Host.Services.GetRequiredService<Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckService>();
        var report = await health.CheckHealthAsync();
        var conveyor = Assert.Single(report.Entries, e => e.Key == "conveyor").Value;
        Assert.Equal(Microsoft.Extensions.Diagnostics.HealthChecks.HealthStatus.Healthy, conveyor.Status);
        Assert.Contains("ready", conveyor.Tags);
    }

    [Fact]
    public async Task Otel_environment_variables_choose_the_otlp_endpoint_and_the_service_name_and_orleans_meters_are_exported()
    {
        static bool Has(byte[] body, string text) => body.AsSpan().IndexOf(Encoding.UTF8.GetBytes(text)) >= 0;
        await Eventually.TrueAsync(
            () => fx.OtlpRequests.Any(r => r.Path == "POST /v1/metrics" && Has(r.Body, "orleans-") && Has(r.Body, EmbeddingGuestFixture.ServiceName)),
            TimeSpan.FromSeconds(30),
            $"an OTLP/HTTP metrics export with Orleans' instruments, named by OTEL_SERVICE_NAME (got {string.Join(", ", fx.OtlpRequests.Select(r => r.Path).Distinct())})");
        Assert.All(fx.OtlpRequests, r => Assert.Contains(r.Path, new[] { "POST /v1/metrics", "POST /v1/traces" }));
        // The configured default name ("conveyor") lost to OTEL_SERVICE_NAME: no string attribute holds it.
        Assert.DoesNotContain(fx.OtlpRequests, r => Has(r.Body, "\u000a\u0008conveyor"));
    }
}
