using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Conveyor.Api.Security;
using Conveyor.Grains.Security;
using Conveyor.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Conveyor.IntegrationTests.Security;

/// <summary>The generated bootstrap admin key: printed once, working, and never lost to a start that died half-way.</summary>
public sealed partial class BootstrapKeyTests : IAsyncLifetime
{
    private const string Generated = "Generated the bootstrap admin API key";

    private NatsServerProcess _nats = null!;
    private RedisServerProcess _redis = null!;

    public async Task InitializeAsync()
    {
        _nats = await NatsServerProcess.StartNewAsync();
        _redis = await RedisServerProcess.StartNewAsync();
    }

    public async Task DisposeAsync()
    {
        await _redis.DisposeAsync();
        await _nats.DisposeAsync();
    }

    [Fact]
    public async Task The_first_start_logs_one_working_admin_key_and_a_restart_logs_none()
    {
        var serviceId = "boot-" + Guid.NewGuid().ToString("N")[..8];
        var first = new CapturingLoggerProvider();
        string key;
        await using (var host = await StartAsync(serviceId, auth: true, first))
        {
            key = SingleGeneratedKey(first);
            await AssertAdminAsync(host, key);
        }

        var second = new CapturingLoggerProvider();
        await using (var host = await StartAsync(serviceId, auth: true, second))
        {
            Assert.DoesNotContain(second.Lines, l => l.Contains(Generated, StringComparison.Ordinal));
            Assert.True(second.Lines.Count > 10, $"only {second.Lines.Count} lines captured: the capture itself is broken");
            await AssertAdminAsync(host, key);
            using var client = Client(host, key);
            var keys = await client.GetFromJsonAsync<JsonElement>("/keys");
            Assert.Single(keys.GetProperty("items").EnumerateArray(), k => k.GetProperty("name").GetString() == "bootstrap");
        }
    }

    [Fact]
    public async Task A_start_that_died_before_completing_the_bootstrap_is_taken_over_and_its_key_revoked()
    {
        var serviceId = "boot-" + Guid.NewGuid().ToString("N")[..8];
        var (abandonedId, abandonedKey) = ApiKeys.Generate();

        // A start that took the lease and created its key, then died before logging it and completing: its lease has
        // run out. (Authentication off here, so this host runs no bootstrap of its own.)
        await using (var host = await StartAsync(serviceId, auth: false, new CapturingLoggerProvider()))
        {
            var grains = host.Services.GetRequiredService<IGrainFactory>();
            var registry = grains.GetGrain<IApiKeyRegistryGrain>(IApiKeyRegistryGrain.Id);
            var begin = await registry.BeginBootstrapAsync(abandonedId, DateTimeOffset.UtcNow.AddSeconds(-1));
            Assert.Equal(BootstrapStep.Proceed, begin.Step);
            await grains.GetGrain<IApiKeyGrain>(abandonedId).CreateAsync(new ApiKeyData
            {
                Id = abandonedId, Name = "bootstrap", Role = ApiRole.Admin, Namespaces = ["*"], Bootstrap = true,
                SecretHash = ApiKeys.Hash(abandonedKey[(ApiKeys.Prefix.Length + abandonedId.Length + 1)..]), CreatedAt = DateTimeOffset.UtcNow,
            });
            await registry.AddAsync(abandonedId);
        }

        var logs = new CapturingLoggerProvider();
        await using (var host = await StartAsync(serviceId, auth: true, logs))
        {
            var key = SingleGeneratedKey(logs);
            Assert.NotEqual(abandonedKey, key);
            await AssertAdminAsync(host, key);
            using var abandoned = Client(host, abandonedKey);
            using var refused = await abandoned.GetAsync("/keys");
            await ProblemAssert.SaysAsync(refused, HttpStatusCode.Unauthorized, "unauthorized", "revoked");
        }

        // Completed now: the next start prints nothing.
        var again = new CapturingLoggerProvider();
        await using (await StartAsync(serviceId, auth: true, again))
        {
            Assert.DoesNotContain(again.Lines, l => l.Contains(Generated, StringComparison.Ordinal));
        }
    }

    private Task<ConveyorTestHost> StartAsync(string serviceId, bool auth, CapturingLoggerProvider logs) =>
        ConveyorTestHost.StartAsync(
            _nats.Url,
            _redis.ConnectionString,
            serviceId,
            new Dictionary<string, string?> { ["Conveyor:Auth:Enabled"] = auth ? "true" : "false" },
            builder =>
            {
                builder.Logging.SetMinimumLevel(LogLevel.Information);
                builder.Logging.AddProvider(logs);
            });

    /// <summary>The one generated key in the log; fails on none or more than one.</summary>
    private static string SingleGeneratedKey(CapturingLoggerProvider logs)
    {
        var lines = logs.Lines.Where(l => l.Contains(Generated, StringComparison.Ordinal)).ToList();
        // One log call; the capture writes message and structured state on one line, so one line per call.
        Assert.True(lines.Count == 1, $"{lines.Count} generated-key lines:\n{string.Join("\n", lines)}");
        var keys = KeyPattern().Matches(lines[0]).Select(m => m.Value).Distinct().ToList();
        return Assert.Single(keys);
    }

    private static async Task AssertAdminAsync(ConveyorTestHost host, string key)
    {
        using var client = Client(host, key);
        using var created = await client.PostAsJsonAsync("/namespaces", new { name = EngineFixture.Unique("boot") });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        using var keys = await client.GetAsync("/keys");
        Assert.Equal(HttpStatusCode.OK, keys.StatusCode);
        using var anonymous = await host.Http.GetAsync("/keys");
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
    }

    private static HttpClient Client(ConveyorTestHost host, string key)
    {
        var client = new HttpClient { BaseAddress = host.Address, Timeout = TimeSpan.FromSeconds(60) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    [GeneratedRegex("cvk_[a-z0-9]+_[A-Za-z0-9_-]+")]
    private static partial Regex KeyPattern();
}
