using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Conveyor.Api.Security;
using Conveyor.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace Conveyor.IntegrationTests.Security;

/// <summary>
/// Two silos of one service on one Redis (same grain state, same rate-limit buckets), each with its own HTTP endpoint,
/// whose write rate limit reads one fake clock: time stands still until a test moves it, so what a bucket allows is
/// exact, however fast or slow this machine is.
/// </summary>
public sealed class RateLimitFixture : IAsyncLifetime
{
    public const int Burst = 10;
    public const int PerSecond = 2;

    private NatsServerProcess? _nats;
    private RedisServerProcess? _redis;

    public string AdminKey { get; } = ApiKeys.Generate().Key;

    public FakeTimeProvider Clock { get; } = new(new DateTimeOffset(2026, 8, 1, 12, 0, 0, TimeSpan.Zero));

    public ConveyorTestHost First { get; private set; } = null!;

    public ConveyorTestHost Second { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        _nats = await NatsServerProcess.StartNewAsync();
        _redis = await RedisServerProcess.StartNewAsync();
        var serviceId = "rate-" + Guid.NewGuid().ToString("N")[..8];
        var settings = new Dictionary<string, string?>
        {
            ["Conveyor:Auth:Enabled"] = "true",
            ["Conveyor:Auth:BootstrapKey"] = AdminKey,
            ["Conveyor:Auth:WriteRequestsPerSecond"] = PerSecond.ToString(CultureInfo.InvariantCulture),
            ["Conveyor:Auth:WriteBurst"] = Burst.ToString(CultureInfo.InvariantCulture),
        };
        First = await ConveyorTestHost.StartAsync(_nats.Url, _redis.ConnectionString, serviceId, settings, b => b.Services.AddSingleton(new WriteRateLimitClock(Clock)));
        Second = await ConveyorTestHost.StartAsync(_nats.Url, _redis.ConnectionString, serviceId, settings, b => b.Services.AddSingleton(new WriteRateLimitClock(Clock)));
    }

    public async Task DisposeAsync()
    {
        await Disposal.InOrderAsync(Second, First, _redis, _nats);
    }

    /// <summary>
    /// A new operator key with a full bucket. The clock first moves on by an hour, which fills every bucket again — the
    /// admin key's too, which pays one write per key created. Tests of one class run one at a time, so no other test
    /// sees the clock move under it.
    /// </summary>
    public async Task<string> FreshKeyAsync()
    {
        Clock.Advance(TimeSpan.FromHours(1));
        using var admin = RateLimitTests.Client(First, AdminKey);
        using var created = await admin.PostAsJsonAsync("/keys", new { name = "writer", role = "operator", namespaces = new[] { "default" } });
        var text = await created.Content.ReadAsStringAsync();
        Assert.True(created.StatusCode == HttpStatusCode.Created, $"POST /keys: {(int)created.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.GetProperty("key").GetString()!;
    }
}

/// <summary>The per-key write rate limit: a burst, then a rate, shared by the silos of a cluster.</summary>
public sealed class RateLimitTests(RateLimitFixture fx) : IClassFixture<RateLimitFixture>
{
    private const int Burst = RateLimitFixture.Burst;

    /// <summary>One emission interval: the time in which the bucket earns one write.</summary>
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(1.0 / RateLimitFixture.PerSecond);

    [Fact]
    public async Task A_key_gets_its_burst_then_429_with_retry_after_until_the_clock_refills_one_write_per_interval()
    {
        using var client = Client(fx.First, await fx.FreshKeyAsync());

        for (var i = 0; i < Burst; i++)
        {
            // Past the limiter, the empty definition is refused by validation: nothing is stored.
            Assert.Equal(HttpStatusCode.BadRequest, await WriteAsync(client));
        }

        using (var limited = await SendWriteAsync(client))
        {
            var problem = await ProblemAssert.IsAsync(limited, HttpStatusCode.TooManyRequests, "too-many-requests");
            Assert.Equal(TimeSpan.FromSeconds(1), limited.Headers.RetryAfter?.Delta);
            Assert.Contains($"more than {Burst} write requests at once", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        }

        // Just short of one interval nothing has been earned; at the interval exactly one write has.
        fx.Clock.Advance(Interval - TimeSpan.FromMilliseconds(1));
        Assert.Equal(HttpStatusCode.TooManyRequests, await WriteAsync(client));
        fx.Clock.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal(HttpStatusCode.BadRequest, await WriteAsync(client));
        Assert.Equal(HttpStatusCode.TooManyRequests, await WriteAsync(client));

        // A second earns PerSecond writes.
        fx.Clock.Advance(TimeSpan.FromSeconds(1));
        for (var i = 0; i < RateLimitFixture.PerSecond; i++)
        {
            Assert.Equal(HttpStatusCode.BadRequest, await WriteAsync(client));
        }

        Assert.Equal(HttpStatusCode.TooManyRequests, await WriteAsync(client));

        // Reads are not limited.
        using var read = await client.GetAsync("/runs");
        Assert.Equal(HttpStatusCode.OK, read.StatusCode);
    }

    [Fact]
    public async Task Writes_sent_all_at_once_get_exactly_the_burst()
    {
        using var client = Client(fx.First, await fx.FreshKeyAsync());

        var statuses = await Task.WhenAll(Enumerable.Range(0, Burst * 5).Select(_ => WriteAsync(client)));

        Assert.Equal(Burst, statuses.Count(s => s == HttpStatusCode.BadRequest));
        Assert.Equal(Burst * 4, statuses.Count(s => s == HttpStatusCode.TooManyRequests));
    }

    [Fact]
    public async Task Two_silos_together_allow_one_burst_per_key_and_one_rate()
    {
        var key = await fx.FreshKeyAsync();
        using var viaFirst = Client(fx.First, key);
        using var viaSecond = Client(fx.Second, key);

        // Alternating silos: with a bucket per silo each would allow its own burst, twice the limit in all.
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < Burst * 3; i++)
        {
            statuses.Add(await WriteAsync(i % 2 == 0 ? viaFirst : viaSecond));
        }

        Assert.Equal(Enumerable.Repeat(HttpStatusCode.BadRequest, Burst).Concat(Enumerable.Repeat(HttpStatusCode.TooManyRequests, Burst * 2)), statuses);

        // What one silo's refill allows, the other's writes use up.
        fx.Clock.Advance(Interval);
        Assert.Equal(HttpStatusCode.BadRequest, await WriteAsync(viaSecond));
        Assert.Equal(HttpStatusCode.TooManyRequests, await WriteAsync(viaFirst));
    }

    [Fact]
    public async Task Another_key_has_a_bucket_of_its_own()
    {
        using var spent = Client(fx.First, await fx.FreshKeyAsync());
        using var other = Client(fx.First, await fx.FreshKeyAsync());
        for (var i = 0; i < Burst; i++)
        {
            Assert.Equal(HttpStatusCode.BadRequest, await WriteAsync(spent));
        }

        Assert.Equal(HttpStatusCode.TooManyRequests, await WriteAsync(spent));
        Assert.Equal(HttpStatusCode.BadRequest, await WriteAsync(other));
    }

    internal static HttpClient Client(ConveyorTestHost host, string key)
    {
        var client = new HttpClient { BaseAddress = host.Address, Timeout = TimeSpan.FromSeconds(60) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    internal static Task<HttpResponseMessage> SendWriteAsync(HttpClient client) =>
        client.PostAsync("/resource-definitions", new StringContent("{}", Encoding.UTF8, "application/json"));

    internal static async Task<HttpStatusCode> WriteAsync(HttpClient client)
    {
        using var response = await SendWriteAsync(client);
        return response.StatusCode;
    }
}

/// <summary>
/// The limit as a real host runs it, timed by the Redis server's clock: a key always gets its burst, and never more
/// than the burst plus what the rate earns while the requests run — bounds that hold on any machine.
/// </summary>
public sealed class RateLimitServerClockTests : IAsyncLifetime
{
    private const int Burst = 5;
    private const int PerSecond = 1;

    private readonly string _adminKey = ApiKeys.Generate().Key;
    private NatsServerProcess? _nats;
    private RedisServerProcess? _redis;
    private ConveyorTestHost? _host;

    public async Task InitializeAsync()
    {
        _nats = await NatsServerProcess.StartNewAsync();
        _redis = await RedisServerProcess.StartNewAsync();
        _host = await ConveyorTestHost.StartAsync(_nats.Url, _redis.ConnectionString, "rate-" + Guid.NewGuid().ToString("N")[..8], new Dictionary<string, string?>
        {
            ["Conveyor:Auth:Enabled"] = "true",
            ["Conveyor:Auth:BootstrapKey"] = _adminKey,
            ["Conveyor:Auth:WriteRequestsPerSecond"] = PerSecond.ToString(CultureInfo.InvariantCulture),
            ["Conveyor:Auth:WriteBurst"] = Burst.ToString(CultureInfo.InvariantCulture),
        });
    }

    public Task DisposeAsync() => Disposal.InOrderAsync(_host, _redis, _nats);

    [Fact]
    public async Task A_key_gets_its_burst_and_no_more_than_the_rate_earns_meanwhile()
    {
        using var admin = RateLimitTests.Client(_host!, _adminKey);
        using var created = await admin.PostAsJsonAsync("/keys", new { name = "writer", role = "operator", namespaces = new[] { "default" } });
        var key = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("key").GetString()!;
        using var client = RateLimitTests.Client(_host!, key);

        const int requests = 50;
        var elapsed = Stopwatch.StartNew();
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < requests; i++)
        {
            statuses.Add(await RateLimitTests.WriteAsync(client));
        }

        elapsed.Stop();
        var allowed = statuses.Count(s => s != HttpStatusCode.TooManyRequests);
        Assert.All(statuses, s => Assert.True(s is HttpStatusCode.BadRequest or HttpStatusCode.TooManyRequests, $"{s}"));
        // The first Burst writes find a full bucket, whatever the time; beyond them the rate earns one write per second.
        Assert.Equal(Enumerable.Repeat(HttpStatusCode.BadRequest, Burst), statuses.Take(Burst));
        var ceiling = Burst + (int)Math.Ceiling(elapsed.Elapsed.TotalSeconds * PerSecond) + 1;
        Assert.True(allowed <= ceiling, $"{allowed} of {requests} allowed in {elapsed.Elapsed.TotalSeconds:0.0} s, at most {ceiling}: {string.Join(",", statuses.Select(s => (int)s))}");
    }
}
