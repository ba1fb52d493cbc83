using Conveyor.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.Storage;
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
            WrapStorage(silo.Services);
            silo.Services.AddSingleton<ResultArrivals>();
            silo.Services.AddSingleton<IIncomingGrainCallFilter>(sp => sp.GetRequiredService<ResultArrivals>());
        });
        Cluster = builder.Build();
        await Cluster.DeployAsync();
    }

    /// <summary>The fault-injecting wrapper around the silo's real Redis grain storage.</summary>
    public FaultyGrainStorage Storage =>
        (FaultyGrainStorage)Cluster.Silos[0].ServiceProvider.GetRequiredKeyedService<IGrainStorage>(ConveyorStorage.Name);

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

    /// <summary>Puts <see cref="FaultyGrainStorage"/> in front of the registered Conveyor storage provider.</summary>
    private static void WrapStorage(IServiceCollection services)
    {
        var real = services.Last(d => d.ServiceType == typeof(IGrainStorage) && d.IsKeyedService && Equals(d.ServiceKey, ConveyorStorage.Name));
        var create = real.KeyedImplementationFactory!;
        services.Remove(real);
        services.AddKeyedSingleton<IGrainStorage>(ConveyorStorage.Name, (sp, key) => new FaultyGrainStorage((IGrainStorage)create(sp, key)));
    }
}

[CollectionDefinition(Name)]
public sealed class ClusterCollection : ICollectionFixture<ClusterFixture>
{
    public const string Name = "cluster";
}
