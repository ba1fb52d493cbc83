using Conveyor.ClusterTests;
using Conveyor.Testing;

namespace Conveyor.OpenApi.Tests;

/// <summary>
/// One silo process (cluster mode: API keys on) with the reference page enabled, on its own nats-server and
/// redis-server, and the OpenAPI document it serves.
/// </summary>
public sealed class SiloFixture : IAsyncLifetime
{
    private NatsServerProcess? _nats;
    private RedisServerProcess? _redis;
    private SiloProcess? _silo;

    public NatsServerProcess Nats => _nats!;

    public SiloProcess Silo => _silo!;

    /// <summary>The document as served at <c>/openapi/conveyor.json</c>.</summary>
    public string Document { get; private set; } = "";

    public async Task InitializeAsync()
    {
        _nats = await NatsServerProcess.StartNewAsync();
        _redis = await RedisServerProcess.StartNewAsync();
        var id = "openapi-" + Guid.NewGuid().ToString("N")[..8];
        _silo = await SiloProcess.StartAsync("openapi", SiloProcess.Settings(id, _nats.Url, _redis.ConnectionString, new Dictionary<string, string>
        {
            ["Conveyor:Api:ReferencePage"] = "true",
        }));
        Document = await _silo.Http.GetStringAsync("/openapi/conveyor.json");
    }

    public Task DisposeAsync() => Disposal.InOrderAsync(_silo, _redis, _nats);
}

[CollectionDefinition(Name)]
public sealed class SiloCollection : ICollectionFixture<SiloFixture>
{
    public const string Name = "silo";
}
