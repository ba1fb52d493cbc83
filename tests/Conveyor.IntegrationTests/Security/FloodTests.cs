using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Conveyor.Api.Security;
using Conveyor.Testing;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Runtime;
using Xunit.Abstractions;

namespace Conveyor.IntegrationTests.Security;

/// <summary>A host of its own, so that the grain activations counted are the flood's alone.</summary>
public sealed class FloodFixture : IAsyncLifetime
{
    private NatsServerProcess? _nats;
    private RedisServerProcess? _redis;
    private ConveyorTestHost? _host;

    public string AdminKey { get; } = ApiKeys.Generate().Key;

    public ConveyorTestHost Host => _host!;

    public async Task InitializeAsync()
    {
        _nats = await NatsServerProcess.StartNewAsync();
        _redis = await RedisServerProcess.StartNewAsync();
        // The defaults of the failure limit, as a production host has them.
        _host = await ConveyorTestHost.StartAsync(_nats.Url, _redis.ConnectionString, EngineFixture.Unique("flood"), new Dictionary<string, string?>
        {
            ["Conveyor:Auth:Enabled"] = "true",
            ["Conveyor:Auth:BootstrapKey"] = AdminKey,
        });
    }

    public Task DisposeAsync() => Disposal.InOrderAsync(_host, _redis, _nats);
}

/// <summary>
/// Unauthenticated junk costs a silo nothing lasting: made-up API keys and webhook names activate no grain that stays,
/// an address that keeps failing is refused before any lookup, and the host stays responsive — while a key that works
/// keeps working from the same address.
/// </summary>
public sealed class FloodTests(FloodFixture fx, ITestOutputHelper output) : IClassFixture<FloodFixture>
{
    private const int Requests = 10_000;

    // Orleans names a grain type after its class, lowercased and without "Grain"; older forms carry the full name.
    private static bool Is(string grainType, string className) =>
        grainType.Equals(className[..^"Grain".Length], StringComparison.OrdinalIgnoreCase)
        || grainType.EndsWith("." + className, StringComparison.Ordinal)
        || grainType.Contains("." + className + ",", StringComparison.Ordinal);

    [Fact]
    public async Task Ten_thousand_requests_with_random_keys_and_hooks_leave_activations_and_memory_bounded_and_health_fast()
    {
        var grains = fx.Host.Services.GetRequiredService<IGrainFactory>();
        var management = grains.GetGrain<IManagementGrain>(0);
        async Task<(int Keys, int Pipelines)> ActivationsAsync()
        {
            var stats = await management.GetSimpleGrainStatistics();
            return (stats.Where(s => Is(s.GrainType, "ApiKeyGrain")).Sum(s => s.ActivationCount), stats.Where(s => Is(s.GrainType, "PipelineGrain")).Sum(s => s.ActivationCount));
        }

        using var handler = new SocketsHttpHandler { MaxConnectionsPerServer = 16 };
        using var http = new HttpClient(handler) { BaseAddress = fx.Host.Address, Timeout = TimeSpan.FromSeconds(60) };
        async Task<HttpStatusCode> AdminAsync()
        {
            using var admin = new HttpRequestMessage(HttpMethod.Get, "/keys");
            admin.Headers.Authorization = new AuthenticationHeaderValue("Bearer", fx.AdminKey);
            using var response = await http.SendAsync(admin);
            return response.StatusCode;
        }

        Assert.Equal(HttpStatusCode.OK, await AdminAsync());
        var before = await ActivationsAsync();
        GC.Collect();
        var memoryBefore = GC.GetTotalMemory(forceFullCollection: true);

        // /health, polled through the flood: it must keep answering quickly.
        using var stop = new CancellationTokenSource();
        var healthTimes = new ConcurrentBag<TimeSpan>();
        var health = Task.Run(async () =>
        {
            using var probe = new HttpClient { BaseAddress = fx.Host.Address, Timeout = TimeSpan.FromSeconds(60) };
            while (!stop.IsCancellationRequested)
            {
                var sent = Stopwatch.StartNew();
                using var response = await probe.GetAsync("/health", CancellationToken.None);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                healthTimes.Add(sent.Elapsed);
                await Task.Delay(50, CancellationToken.None);
            }
        });

        var statuses = new ConcurrentDictionary<int, int>();
        var body = Encoding.UTF8.GetBytes(new string('x', 1024));
        var elapsed = Stopwatch.StartNew();
        await Parallel.ForAsync(0, Requests, new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (i, ct) =>
        {
            using var request = i % 2 == 0
                ? new HttpRequestMessage(HttpMethod.Get, "/pipelines/ship")
                : new HttpRequestMessage(HttpMethod.Post, $"/hooks/default/{Guid.NewGuid():N}/{Guid.NewGuid():N}") { Content = new ByteArrayContent(body) };
            if (i % 2 == 0)
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", ApiKeys.Generate().Key);
            }

            using var response = await http.SendAsync(request, ct);
            statuses.AddOrUpdate((int)response.StatusCode, 1, (_, n) => n + 1);
        });
        var flood = elapsed.Elapsed;

        // A key that worked before still does, from the very address that is over its failure budget.
        Assert.Equal(HttpStatusCode.OK, await AdminAsync());

        await stop.CancelAsync();
        await health;

        // Activations the flood caused deactivate as soon as they answered; none piles up.
        (int Keys, int Pipelines) after = default;
        await Eventually.TrueAsync(async () => (after = await ActivationsAsync()) is { Keys: <= 20, Pipelines: <= 20 }, TimeSpan.FromSeconds(60), "the flood's activations are gone");
        GC.Collect();
        var grown = GC.GetTotalMemory(forceFullCollection: true) - memoryBefore;
        var slowest = healthTimes.Max();
        output.WriteLine($"{Requests} requests in {flood.TotalSeconds:0.0} s: {string.Join(", ", statuses.OrderBy(s => s.Key).Select(s => $"{s.Key}×{s.Value}"))}; " +
                         $"activations before {before}, after {after}; managed heap {grown / 1024 / 1024} MiB larger; /health {healthTimes.Count} probes, slowest {slowest.TotalMilliseconds:0} ms");

        Assert.Equal(Requests, statuses.Values.Sum());
        Assert.True(statuses.Keys.All(s => s is 401 or 404 or 429), $"unexpected statuses: {string.Join(", ", statuses.Keys)}");
        Assert.True(statuses.GetValueOrDefault(429) > Requests / 2, "most of the flood is refused by the address's failure budget");
        Assert.True(grown < 200L * 1024 * 1024, $"the managed heap grew by {grown / 1024 / 1024} MiB");
        Assert.True(slowest < TimeSpan.FromSeconds(5), $"/health took {slowest.TotalMilliseconds:0} ms during the flood");
    }
}
