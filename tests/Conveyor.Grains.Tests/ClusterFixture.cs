using Conveyor.Testing;
using Microsoft.Extensions.Hosting;
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
        });
        Cluster = builder.Build();
        await Cluster.DeployAsync();
    }

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
}

[CollectionDefinition(Name)]
public sealed class ClusterCollection : ICollectionFixture<ClusterFixture>
{
    public const string Name = "cluster";
}
