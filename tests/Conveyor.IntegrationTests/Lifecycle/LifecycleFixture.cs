using System.Text.Json;
using Conveyor.Testing;
using NATS.Client.Core;
using StackExchange.Redis;

namespace Conveyor.IntegrationTests.Lifecycle;

/// <summary>
/// Real servers and one host with short lifecycle settings: a 4 s default attempt timeout and a 3 s heartbeat lease, a
/// retention sweep every second, three deliveries of a result before the dead letters, and small limits. Each test uses
/// its own resource type, pipeline and drivers; steps that are not about attempt timeouts set a timeout of their own.
/// </summary>
public sealed class LifecycleFixture : IAsyncLifetime
{
    private NatsServerProcess? _nats;
    private RedisServerProcess? _redis;
    private ConveyorTestHost? _host;
    private ConnectionMultiplexer? _redisClient;
    private NatsConnection? _natsClient;

    public NatsServerProcess Nats => _nats!;

    public RedisServerProcess Redis => _redis!;

    public ConveyorTestHost Host => _host!;

    public IDatabase Db => _redisClient!.GetDatabase();

    public IServer RedisServer => _redisClient!.GetServers()[0];

    public NatsConnection NatsClient => _natsClient!;

    public string ServiceId { get; } = "lc-" + Guid.NewGuid().ToString("N")[..8];

    public static readonly Dictionary<string, string?> Settings = new()
    {
        ["Conveyor:Runs:DefaultAttemptTimeout"] = "00:00:04",
        ["Conveyor:Runs:HeartbeatLease"] = "00:00:03",
        ["Conveyor:Runs:RetentionSweepInterval"] = "00:00:01",
        ["Conveyor:Nats:ResultMaxDeliver"] = "3",
        ["Conveyor:Nats:ResultBackoff:0"] = "00:00:00.200",
        ["Conveyor:Limits:MaxStepsPerPipeline"] = "5",
        ["Conveyor:Limits:MaxSchedulesPerPipeline"] = "2",
        ["Conveyor:Limits:MinScheduleInterval"] = "00:01:00",
        ["Conveyor:Limits:MaxResultDataBytes"] = "700000",
        ["Conveyor:Limits:MaxResourceSpecBytes"] = "2048",
        ["Conveyor:Limits:KeepResourceVersions"] = "3",
        ["Conveyor:Limits:MaxStreamsPerKey"] = "2",
    };

    public async Task InitializeAsync()
    {
        _nats = await NatsServerProcess.StartNewAsync();
        _redis = await RedisServerProcess.StartNewAsync();
        _host = await ConveyorTestHost.StartAsync(_nats.Url, _redis.ConnectionString, ServiceId, Settings);
        _redisClient = await ConnectionMultiplexer.ConnectAsync(_redis.ConnectionString + ",allowAdmin=true");
        _natsClient = new NatsConnection(NatsOpts.Default with { Url = _nats.Url });
        await _natsClient.ConnectAsync();
    }

    public async Task DisposeAsync()
    {
        if (_natsClient is not null)
        {
            await _natsClient.DisposeAsync();
        }

        _redisClient?.Dispose();
        await Disposal.InOrderAsync(_host, _redis, _nats);
    }

    public static string Unique(string prefix) => EngineFixture.Unique(prefix);

    /// <summary>A resource type whose spec is any object, and a pipeline over it.</summary>
    public async Task DefineAsync(string type, object pipeline)
    {
        await Host.PostJsonAsync("/resource-definitions", new { name = type, version = "1", schema = new { type = "object" } });
        await Host.PostJsonAsync("/pipelines", pipeline);
    }

    /// <summary>Creates a resource of <paramref name="type"/> named <paramref name="name"/> for the pipeline; returns the run id.</summary>
    public async Task<string> CreateResourceAsync(string type, string name, string pipeline, object? spec = null)
    {
        var created = await Host.PostJsonAsync("/resources", new { name, resource = type, pipeline, spec = spec ?? new { image = "x" } });
        return created.GetProperty("runid").GetString()!;
    }

    /// <summary>Starts a run of <paramref name="pipeline"/> for an existing resource; returns its id.</summary>
    public async Task<string> TriggerAsync(string pipeline, string resource)
    {
        var run = await Host.PostJsonAsync($"/pipelines/{pipeline}/runs", new { resource });
        return run.GetProperty("id").GetString()!;
    }

    public async Task<int> StatusOfAsync(string path)
    {
        using var response = await Host.Http.GetAsync(path);
        return (int)response.StatusCode;
    }

    /// <summary>Every Redis key, hash field or set member that mentions <paramref name="text"/> (a run id in either form).</summary>
    public async Task<List<string>> RedisMentionsAsync(string text)
    {
        var found = new List<string>();
        await foreach (var key in RedisServer.KeysAsync(pattern: "*"))
        {
            var name = key.ToString();
            if (name.Contains(text, StringComparison.OrdinalIgnoreCase))
            {
                found.Add(name);
                continue;
            }

            switch (await Db.KeyTypeAsync(key))
            {
                case RedisType.Hash:
                    foreach (var entry in await Db.HashGetAllAsync(key))
                    {
                        if (entry.Name.ToString().Contains(text, StringComparison.OrdinalIgnoreCase))
                        {
                            found.Add($"{name} field {entry.Name}");
                        }
                    }

                    break;
                case RedisType.SortedSet:
                    foreach (var entry in await Db.SortedSetRangeByRankAsync(key))
                    {
                        if (entry.ToString().Contains(text, StringComparison.OrdinalIgnoreCase))
                        {
                            found.Add($"{name} member {entry}");
                        }
                    }

                    break;
            }
        }

        return found;
    }

    /// <summary>The JSON of the last message on <paramref name="subject"/> in <paramref name="stream"/>, and its headers; null when none.</summary>
    public async Task<(JsonElement Body, NatsHeaders Headers)?> LastMessageAsync(string stream, string subject)
    {
        var message = await Conveyor.Grains.Nats.StoredMessages.LastAsync(NatsClient, stream, subject);
        return message is null ? null : (JsonDocument.Parse(message.Data.Length == 0 ? "null"u8.ToArray() : message.Data).RootElement.Clone(), message.Headers);
    }
}

[CollectionDefinition(Name)]
public sealed class LifecycleCollection : ICollectionFixture<LifecycleFixture>
{
    public const string Name = "lifecycle";
}
