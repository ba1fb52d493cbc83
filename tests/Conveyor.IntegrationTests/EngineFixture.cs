using Conveyor.Testing;

namespace Conveyor.IntegrationTests;

/// <summary>One real nats-server, one real redis-server and one Conveyor host, shared by a test collection.</summary>
public sealed class EngineFixture : IAsyncLifetime
{
    private NatsServerProcess? _nats;
    private RedisServerProcess? _redis;
    private ConveyorTestHost? _host;

    public NatsServerProcess Nats => _nats!;

    public RedisServerProcess Redis => _redis!;

    public ConveyorTestHost Host => _host!;

    public string ServiceId { get; } = "it-" + Guid.NewGuid().ToString("N")[..8];

    public async Task InitializeAsync()
    {
        _nats = await NatsServerProcess.StartNewAsync();
        _redis = await RedisServerProcess.StartNewAsync();
        _host = await ConveyorTestHost.StartAsync(_nats.Url, _redis.ConnectionString, ServiceId);
    }

    public Task DisposeAsync() => Disposal.InOrderAsync(_host, _redis, _nats);

    /// <summary>A unique lowercase name, so tests sharing the fixture never see each other's objects or subjects.</summary>
    public static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid().ToString("N")[..8]}";

    /// <summary>Creates a resource definition with a small schema (an object that needs an <c>image</c> string).</summary>
    public Task CreateDefinitionAsync(string type) => Host.PostJsonAsync("/resource-definitions", new
    {
        name = type,
        description = "test type",
        version = "1.0.0",
        schema = new
        {
            type = "object",
            properties = new { image = new { type = "string" }, replicas = new { type = "integer", minimum = 1 } },
            required = new[] { "image" },
        },
    });
}

[CollectionDefinition(Name)]
public sealed class EngineCollection : ICollectionFixture<EngineFixture>
{
    public const string Name = "engine";
}
