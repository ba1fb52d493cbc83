using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Conveyor.Api.Security;
using Conveyor.Testing;

namespace Conveyor.IntegrationTests.Security;

/// <summary>
/// A Conveyor host with authentication on (bootstrap admin key from configuration) on its own servers, and no write
/// rate limit.
/// </summary>
public sealed class SecurityFixture : IAsyncLifetime
{
    private NatsServerProcess? _nats;
    private RedisServerProcess? _redis;
    private ConveyorTestHost? _host;

    public SecurityFixture() => AdminKey = ApiKeys.Generate().Key;

    /// <summary>The bootstrap admin key.</summary>
    public string AdminKey { get; }

    public NatsServerProcess Nats => _nats!;

    public RedisServerProcess Redis => _redis!;

    public ConveyorTestHost Host => _host!;

    public async Task InitializeAsync()
    {
        _nats = await NatsServerProcess.StartNewAsync();
        _redis = await RedisServerProcess.StartNewAsync();
        var serviceId = "sec-" + Guid.NewGuid().ToString("N")[..8];
        _host = await ConveyorTestHost.StartAsync(_nats.Url, _redis.ConnectionString, serviceId, new Dictionary<string, string?>
        {
            ["Conveyor:Auth:Enabled"] = "true",
            ["Conveyor:Auth:BootstrapKey"] = AdminKey,
            // Off: every test here writes through the one bootstrap admin key, and some send dozens of writes per key,
            // so a per-key limit would make them pass or fail by how many requests fit in a second on this machine.
            // The limit has tests of its own, with their own hosts, keys and clock (RateLimitTests).
            ["Conveyor:Auth:WriteRequestsPerSecond"] = "0",
        });
    }

    public Task DisposeAsync() => Disposal.InOrderAsync(_host, _redis, _nats);

    /// <summary>A client that sends <paramref name="key"/> as its bearer token (none when null).</summary>
    public HttpClient Client(string? key)
    {
        var client = new HttpClient { BaseAddress = Host.Address, Timeout = TimeSpan.FromSeconds(60) };
        if (key is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }

        return client;
    }

    /// <summary>Creates a key with the admin key; returns the full key string.</summary>
    public async Task<string> CreateKeyAsync(string role, params string[] namespaces)
    {
        using var admin = Client(AdminKey);
        using var response = await admin.PostAsJsonAsync("/keys", new { name = $"{role} key", role, namespaces });
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"POST /keys: {(int)response.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.GetProperty("key").GetString()!;
    }

    /// <summary>Creates a namespace with the admin key.</summary>
    public async Task CreateNamespaceAsync(string name)
    {
        using var admin = Client(AdminKey);
        using var response = await admin.PostAsJsonAsync("/namespaces", new { name });
        Assert.True(response.IsSuccessStatusCode, $"POST /namespaces: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
    }

    /// <summary>POSTs with the admin key and returns the JSON answer, asserting success.</summary>
    public async Task<JsonElement> AdminPostAsync(string path, object body)
    {
        using var admin = Client(AdminKey);
        using var response = await admin.PostAsJsonAsync(path, body);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"POST {path}: {(int)response.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }
}

[CollectionDefinition(Name)]
public sealed class SecurityCollection : ICollectionFixture<SecurityFixture>
{
    public const string Name = "security";
}
