using Conveyor.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Conveyor.Grains.Resources;
using Conveyor.Grains.Runs;
using Orleans.Configuration;
using Orleans.TestingHost;

namespace Conveyor.Grains.Tests;

/// <summary>An Orleans test cluster whose silos use the real Redis storage and reminders and a real NATS.</summary>
public sealed class ClusterFixture : IAsyncLifetime
{
    private NatsServerProcess? _nats;
    private RedisServerProcess? _redis;

    public InProcessTestCluster Cluster { get; private set; } = null!;

    public NatsServerProcess Nats => _nats!;

    public IGrainFactory Grains => Cluster.Client;

    /// <summary>How long a settled finished run stays resident in this cluster.</summary>
    public static TimeSpan FinishedRunResidence { get; } = TimeSpan.FromSeconds(1);

    /// <summary>How long an idle resource stays resident in this cluster.</summary>
    public static TimeSpan ResourceIdleResidence { get; } = TimeSpan.FromSeconds(2);

    /// <summary>Whether the grain has an activation in the cluster now.</summary>
    public async Task<bool> IsResidentAsync(GrainId grain) =>
        (await Grains.GetGrain<IManagementGrain>(0).GetDetailedGrainStatistics()).Any(g => g.GrainId == grain);

    public async Task InitializeAsync()
    {
        _nats = await NatsServerProcess.StartNewAsync();
        _redis = await RedisServerProcess.StartNewAsync();
        var natsUrl = _nats.Url;
        var redis = _redis.ConnectionString;
        var builder = new InProcessTestClusterBuilder(1);
        builder.ConfigureSilo((_, silo) =>
        {
            silo.UseConveyorRedisStorage(redis);
            silo.AddConveyorGrains(n => n.Url = natsUrl);
            // Short, so the test of a finished run leaving memory does not wait the default half minute.
            silo.Services.Configure<RunEngineOptions>(o => o.FinishedRunResidence = FinishedRunResidence);
            // Likewise for an idle resource, with Orleans looking for idle activations every second instead of every minute.
            silo.Services.Configure<ResourceOptions>(o => o.IdleResidence = ResourceIdleResidence);
            silo.Services.Configure<GrainCollectionOptions>(o => o.CollectionQuantum = TimeSpan.FromSeconds(1));
            WrapStorage(silo.Services);
            silo.Services.AddSingleton<ResultArrivals>();
            silo.Services.AddSingleton<IIncomingGrainCallFilter>(sp => sp.GetRequiredService<ResultArrivals>());
        });
        Cluster = builder.Build();
        await Cluster.DeployAsync();
    }

    /// <summary>The fault-injecting wrapper around the silo's real run store.</summary>
    internal FaultyRunStore Storage => (FaultyRunStore)Cluster.Silos[0].ServiceProvider.GetRequiredService<IRunStore>();

    /// <summary>Signals results queued in run grains.</summary>
    public ResultArrivals Arrivals => Cluster.Silos[0].ServiceProvider.GetRequiredService<ResultArrivals>();

    public async Task DisposeAsync()
    {
        if (Cluster is not null)
        {
            await Cluster.DisposeAsync();
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

    /// <summary>Puts <see cref="FaultyRunStore"/> in front of the registered run store.</summary>
    private static void WrapStorage(IServiceCollection services)
    {
        var real = services.Last(d => d.ServiceType == typeof(IRunStore));
        var create = real.ImplementationFactory!;
        services.Remove(real);
        services.AddSingleton<IRunStore>(sp => new FaultyRunStore((IRunStore)create(sp)));
    }
}

[CollectionDefinition(Name)]
public sealed class ClusterCollection : ICollectionFixture<ClusterFixture>
{
    public const string Name = "cluster";
}
