using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Conveyor.Api.Security;
using Conveyor.Testing;

namespace Conveyor.IntegrationTests.Security;

/// <summary>
/// Two hosts on one nats-server and redis-server for the hardening tests of issue #15: <see cref="Open"/> runs without
/// API keys (as a single node does by default), <see cref="Locked"/> with them, and with a tight per-hook delivery limit.
/// </summary>
public sealed class HardeningFixture : IAsyncLifetime
{
    private NatsServerProcess? _nats;
    private NatsServerProcess? _lockedNats;
    private RedisServerProcess? _redis;
    private ConveyorTestHost? _open;
    private ConveyorTestHost? _locked;

    /// <summary>Deliveries one hook of <see cref="Locked"/> takes at once.</summary>
    public const int HookBurst = 3;

    public string AdminKey { get; } = ApiKeys.Generate().Key;

    /// <summary>NATS of <see cref="Open"/>.</summary>
    public NatsServerProcess Nats => _nats!;

    /// <summary>
    /// NATS of <see cref="Locked"/>: a NATS of its own, since hosts on one NATS share its log work queue (a log line of
    /// one host's run would be ingested by the other).
    /// </summary>
    public NatsServerProcess LockedNats => _lockedNats!;

    public RedisServerProcess Redis => _redis!;

    public ConveyorTestHost Open => _open!;

    public ConveyorTestHost Locked => _locked!;

    public async Task InitializeAsync()
    {
        _nats = await NatsServerProcess.StartNewAsync();
        _lockedNats = await NatsServerProcess.StartNewAsync();
        _redis = await RedisServerProcess.StartNewAsync();
        _open = await ConveyorTestHost.StartAsync(_nats.Url, _redis.ConnectionString, EngineFixture.Unique("open"));
        _locked = await ConveyorTestHost.StartAsync(_lockedNats.Url, _redis.ConnectionString, EngineFixture.Unique("locked"), new Dictionary<string, string?>
        {
            ["Conveyor:Auth:Enabled"] = "true",
            ["Conveyor:Auth:BootstrapKey"] = AdminKey,
            ["Conveyor:Auth:WriteRequestsPerSecond"] = "0",
            ["Conveyor:Webhooks:DeliveriesPerSecond"] = "1",
            ["Conveyor:Webhooks:DeliveryBurst"] = HookBurst.ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
    }

    public Task DisposeAsync() => Disposal.InOrderAsync(_locked, _open, _redis, _lockedNats, _nats);

    /// <summary>A client of <see cref="Locked"/> with <paramref name="key"/> (the admin key by default).</summary>
    public HttpClient LockedClient(string? key = null)
    {
        var client = new HttpClient { BaseAddress = Locked.Address, Timeout = TimeSpan.FromSeconds(30) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key ?? AdminKey);
        return client;
    }

    /// <summary>A resource definition (spec: an object) and a resource <c>web</c> of it on <paramref name="host"/>.</summary>
    public static async Task<string> DefinitionAsync(HttpClient client, string prefix = "", object? schema = null)
    {
        var type = EngineFixture.Unique("t");
        await SendAsync(client, HttpMethod.Post, $"{prefix}/resource-definitions", new { name = type, version = "1", schema = schema ?? new { type = "object" } });
        await SendAsync(client, HttpMethod.Post, $"{prefix}/resources", new { name = "web", resource = type, spec = new { image = "x" } });
        return type;
    }

    /// <summary>Sends a JSON request and returns the answer's JSON, asserting a 2xx.</summary>
    public static async Task<JsonElement> SendAsync(HttpClient client, HttpMethod method, string path, object? body)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
        using var response = await client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{method} {path}: {(int)response.StatusCode} {text}");
        return text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone();
    }
}

[CollectionDefinition(Name)]
public sealed class HardeningCollection : ICollectionFixture<HardeningFixture>
{
    public const string Name = "hardening";
}
