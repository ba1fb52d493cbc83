using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Conveyor.Api.Security;
using Conveyor.Testing;

namespace Conveyor.IntegrationTests.Security;

/// <summary>The write rate limit of one key holds across two silos sharing one Redis.</summary>
public sealed class RateLimitTests : IAsyncLifetime
{
    private const int Burst = 10;
    private const int PerSecond = 2;

    private readonly string _adminKey = ApiKeys.Generate().Key;
    private NatsServerProcess _nats = null!;
    private RedisServerProcess _redis = null!;
    private ConveyorTestHost _first = null!;
    private ConveyorTestHost _second = null!;

    public async Task InitializeAsync()
    {
        _nats = await NatsServerProcess.StartNewAsync();
        _redis = await RedisServerProcess.StartNewAsync();
        // Two silos of one service (same grain state, same rate-limit buckets), each with its own HTTP endpoint.
        var serviceId = "rate-" + Guid.NewGuid().ToString("N")[..8];
        var settings = new Dictionary<string, string?>
        {
            ["Conveyor:Auth:Enabled"] = "true",
            ["Conveyor:Auth:BootstrapKey"] = _adminKey,
            ["Conveyor:Auth:WriteRequestsPerSecond"] = PerSecond.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Conveyor:Auth:WriteBurst"] = Burst.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        _first = await ConveyorTestHost.StartAsync(_nats.Url, _redis.ConnectionString, serviceId, settings);
        _second = await ConveyorTestHost.StartAsync(_nats.Url, _redis.ConnectionString, serviceId, settings);
    }

    public async Task DisposeAsync()
    {
        await _second.DisposeAsync();
        await _first.DisposeAsync();
        await _redis.DisposeAsync();
        await _nats.DisposeAsync();
    }

    [Fact]
    public async Task Two_silos_together_allow_one_burst_and_one_rate_per_key()
    {
        using var admin = Client(_first, _adminKey);
        using var created = await admin.PostAsJsonAsync("/keys", new { name = "writer", role = "operator", namespaces = new[] { "default" } });
        var key = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("key").GetString()!;
        using var viaFirst = Client(_first, key);
        using var viaSecond = Client(_second, key);

        // Alternate silos: with a bucket per silo each would allow its own burst, twice the limit in all.
        var elapsed = Stopwatch.StartNew();
        var statuses = new List<int>();
        for (var i = 0; i < Burst * 3; i++)
        {
            using var response = await (i % 2 == 0 ? viaFirst : viaSecond).PostAsync("/resource-definitions", new StringContent("{}", Encoding.UTF8, "application/json"));
            statuses.Add((int)response.StatusCode);
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                Assert.True(response.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1), "Retry-After missing");
                await ProblemAssert.IsAsync(response, HttpStatusCode.TooManyRequests, "too-many-requests");
            }
        }

        var allowed = statuses.Count(s => s != 429);
        // At most the burst plus what the rate refilled while the requests ran (and one for rounding).
        var ceiling = Burst + (int)Math.Ceiling(elapsed.Elapsed.TotalSeconds * PerSecond) + 1;
        Assert.True(allowed >= Burst && allowed <= ceiling, $"{allowed} of {statuses.Count} allowed in {elapsed.Elapsed.TotalSeconds:0.0} s (at most {ceiling}): {string.Join(",", statuses)}");
        Assert.All(statuses.Where(s => s != 429), s => Assert.Equal(400, s));
        // Both silos refused some: the second silo's bucket is the first one's.
        Assert.Contains(429, statuses.Where((_, i) => i % 2 == 0));
        Assert.Contains(429, statuses.Where((_, i) => i % 2 == 1));

        // Another key has its own bucket, and reads are not limited.
        using var other = await admin.PostAsync("/resource-definitions", new StringContent("{}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, other.StatusCode);
        using var read = await viaSecond.GetAsync("/runs");
        Assert.Equal(HttpStatusCode.OK, read.StatusCode);
    }

    private static HttpClient Client(ConveyorTestHost host, string key)
    {
        var client = new HttpClient { BaseAddress = host.Address, Timeout = TimeSpan.FromSeconds(30) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }
}
