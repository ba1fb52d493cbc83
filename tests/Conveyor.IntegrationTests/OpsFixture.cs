using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using Conveyor.Driver.Sdk;
using Conveyor.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Trace;

namespace Conveyor.IntegrationTests;

/// <summary>
/// A Conveyor host with tracing on (spans collected in memory), CDEvents posted to a real HTTP sink in the same
/// process, on its own nats-server and redis-server; plus an SDK driver process-local to the test.
/// </summary>
public sealed class OpsFixture : IAsyncLifetime
{
    private NatsServerProcess? _nats;
    private RedisServerProcess? _redis;
    private ConveyorTestHost? _host;
    private WebApplication? _sink;
    private int _sinkRequests;

    public NatsServerProcess Nats => _nats!;

    public ConveyorTestHost Host => _host!;

    /// <summary>Every span the host's tracer provider exported.</summary>
    public LockedCollection<Activity> Spans { get; } = new();

    /// <summary>CloudEvents the HTTP sink accepted, as JSON.</summary>
    public ConcurrentQueue<string> SinkEvents { get; } = new();

    /// <summary>Id of the event whose first POST the sink refused (its very first request), which the engine must retry.</summary>
    public string? RefusedEventId { get; private set; }

    public async Task InitializeAsync()
    {
        _nats = await NatsServerProcess.StartNewAsync();
        _redis = await RedisServerProcess.StartNewAsync();
        _sink = await StartSinkAsync();
        var sinkUrl = _sink.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First() + "/events";
        _host = await ConveyorTestHost.StartAsync(
            _nats.Url,
            _redis.ConnectionString,
            "ops-" + Guid.NewGuid().ToString("N")[..8],
            new Dictionary<string, string?>
            {
                ["Conveyor:Telemetry:Tracing"] = "true",
                ["Conveyor:CDEvents:HttpSinkUrl"] = sinkUrl,
                ["Conveyor:CDEvents:Source"] = "/conveyor/tests",
                ["Conveyor:CDEvents:BaseUrl"] = "http://conveyor.test",
            },
            builder => builder.Services.ConfigureOpenTelemetryTracerProvider(t => t.AddInMemoryExporter(Spans)));
    }

    public async Task DisposeAsync()
    {
        if (_host is not null)
        {
            await _host.DisposeAsync();
        }

        if (_sink is not null)
        {
            await _sink.StopAsync();
            await _sink.DisposeAsync();
        }

        if (_redis is not null)
        {
            await _redis.DisposeAsync();
        }

        if (_nats is not null)
        {
            await _nats.DisposeAsync();
        }
    }

    /// <summary>Defines a type and a pipeline of steps run by one driver; returns the type (also the pipeline's name).</summary>
    public async Task<string> DefinePipelineAsync(string driver, params (string Id, int MaxAttempts)[] steps)
    {
        var type = EngineFixture.Unique("ops");
        await Host.PostJsonAsync("/resource-definitions", new
        {
            name = type,
            version = "1.0.0",
            schema = new { type = "object", properties = new { image = new { type = "string" } } },
        });
        await Host.PostJsonAsync("/pipelines", new
        {
            name = type,
            resource = type,
            steps = steps.Select(s => new
            {
                id = s.Id,
                name = s.Id,
                driver,
                retry = new { maxAttempts = s.MaxAttempts, initialDelay = "10ms", maxDelay = "10ms" },
            }).ToArray(),
        });
        return type;
    }

    /// <summary>Starts an SDK driver serving <paramref name="type"/>: a step whose id starts with "fail" fails, others succeed.</summary>
    public async Task<DriverManager> StartDriverAsync(string driver, string type, CancellationToken cancellationToken)
    {
        var manager = new DriverManager(
            new ScriptedDriver(driver, type),
            new DriverOptions { Name = driver, Resources = [type], NatsUrl = Nats.Url, ShutdownGracePeriod = TimeSpan.FromSeconds(2) });
        _ = manager.RunAsync(cancellationToken);
        await manager.WaitUntilReadyAsync(cancellationToken);
        return manager;
    }

    private async Task<WebApplication> StartSinkAsync()
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Testing", ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        app.MapPost("/events", async (HttpRequest request) =>
        {
            if (request.ContentType?.StartsWith("application/cloudevents+json", StringComparison.Ordinal) != true)
            {
                return Results.StatusCode(415);
            }

            using var reader = new StreamReader(request.Body);
            var body = await reader.ReadToEndAsync();
            if (Interlocked.Increment(ref _sinkRequests) == 1)
            {
                RefusedEventId = JsonDocument.Parse(body).RootElement.GetProperty("id").GetString();
                return Results.StatusCode(503);
            }

            SinkEvents.Enqueue(body);
            return Results.Accepted();
        });
        await app.StartAsync();
        return app;
    }

    private sealed class ScriptedDriver(string name, string resource) : IDriver
    {
        public string Name => name;

        public IReadOnlyCollection<string> Resources => [resource];

        public Task<DriverResult> ReconcileAsync(DriverEvent driverEvent, DriverContext context, CancellationToken cancellationToken) =>
            Task.FromResult(driverEvent.StepId?.StartsWith("fail", StringComparison.Ordinal) == true
                ? DriverResult.Fail($"{driverEvent.StepId} broke")
                : DriverResult.Ok($"{driverEvent.StepId} done", new { step = driverEvent.StepId }));
    }
}

/// <summary>A list that the exporter may add to while a test reads it.</summary>
public sealed class LockedCollection<T> : ICollection<T>
{
    private readonly List<T> _items = [];

    public int Count
    {
        get
        {
            lock (_items)
            {
                return _items.Count;
            }
        }
    }

    public bool IsReadOnly => false;

    public void Add(T item)
    {
        lock (_items)
        {
            _items.Add(item);
        }
    }

    public List<T> Snapshot()
    {
        lock (_items)
        {
            return [.. _items];
        }
    }

    public void Clear()
    {
        lock (_items)
        {
            _items.Clear();
        }
    }

    public bool Contains(T item)
    {
        lock (_items)
        {
            return _items.Contains(item);
        }
    }

    public void CopyTo(T[] array, int arrayIndex)
    {
        lock (_items)
        {
            _items.CopyTo(array, arrayIndex);
        }
    }

    public bool Remove(T item)
    {
        lock (_items)
        {
            return _items.Remove(item);
        }
    }

    public IEnumerator<T> GetEnumerator() => Snapshot().GetEnumerator();

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}

[CollectionDefinition(Name)]
public sealed class OpsCollection : ICollectionFixture<OpsFixture>
{
    public const string Name = "ops";
}
