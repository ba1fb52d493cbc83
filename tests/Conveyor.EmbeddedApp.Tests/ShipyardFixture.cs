using System.Net.Http.Json;
using System.Text.Json;
using Conveyor.Testing;

namespace Conveyor.EmbeddedApp.Tests;

/// <summary>A real nats-server and redis-server, the sample app on them, and the drivers of its pipeline.</summary>
public sealed class ShipyardFixture : IAsyncLifetime
{
    private NatsServerProcess? _nats;
    private RedisServerProcess? _redis;
    private ShipyardFactory? _app;
    private DeploymentDrivers? _drivers;

    public ShipyardFactory App => _app!;

    public HttpClient Http { get; private set; } = null!;

    public DeploymentDrivers Drivers => _drivers!;

    public async Task InitializeAsync()
    {
        _nats = await NatsServerProcess.StartNewAsync();
        _redis = await RedisServerProcess.StartNewAsync();
        _app = new ShipyardFactory(ShipyardFactory.ExternalServers(_nats.Url, _redis.ConnectionString));
        Http = _app.CreateClient();
        _drivers = await DeploymentDrivers.StartAsync(_nats.Url);
    }

    public async Task DisposeAsync()
    {
        if (_drivers is not null)
        {
            await _drivers.DisposeAsync();
        }

        Http?.Dispose();
        if (_app is not null)
        {
            await _app.DisposeAsync();
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

    public Task<JsonElement> GetJsonAsync(string path) => GetJsonAsync(Http, path);

    public static async Task<JsonElement> GetJsonAsync(HttpClient http, string path)
    {
        using var response = await http.GetAsync(path);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"GET {path}: {(int)response.StatusCode}: {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    /// <summary>Polls the engine's run route until the run has finished.</summary>
    public static async Task<JsonElement> WaitForRunAsync(HttpClient http, string runId, TimeSpan timeout)
    {
        JsonElement run = default;
        await Eventually.TrueAsync(
            async () =>
            {
                run = await GetJsonAsync(http, $"/conveyor/runs/{runId}");
                return run.GetProperty("status").GetString() is "Succeeded" or "Failed" or "Cancelled" or "TimedOut";
            },
            timeout,
            $"run {runId} should finish");
        return run;
    }

    /// <summary>POSTs a deployment to the app's own endpoint and returns the response body.</summary>
    public static async Task<JsonElement> DeployAsync(HttpClient http, string service, string image)
    {
        using var response = await http.PostAsJsonAsync("/deployments", new { service, image });
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == System.Net.HttpStatusCode.Accepted, $"POST /deployments: {(int)response.StatusCode}: {text}");
        var body = JsonDocument.Parse(text).RootElement.Clone();
        Assert.Equal($"/deployments/{body.GetProperty("id").GetString()}", response.Headers.Location?.OriginalString);
        return body;
    }
}

[CollectionDefinition(Name)]
public sealed class ShipyardCollection : ICollectionFixture<ShipyardFixture>
{
    public const string Name = "shipyard";
}
