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

/// <summary>
/// The bootstrap admin key: a generated one is written once to a file only its user can read (never to the log),
/// works, and is never lost to a start that died half-way; a configured one has at least 128 bits and replaces (and
/// revokes) the one before it.
/// </summary>
public sealed partial class BootstrapKeyTests : IAsyncLifetime
{
    private const string Generated = "Generated the bootstrap admin API key";

    private NatsServerProcess _nats = null!;
    private RedisServerProcess _redis = null!;
    private readonly string _keyFile = Path.Combine(Path.GetTempPath(), "conveyor-boot-" + Guid.NewGuid().ToString("N"), "bootstrap-admin.key");

    public async Task InitializeAsync()
    {
        _nats = await NatsServerProcess.StartNewAsync();
        _redis = await RedisServerProcess.StartNewAsync();
    }

    public async Task DisposeAsync()
    {
        await _redis.DisposeAsync();
        await _nats.DisposeAsync();
        if (Directory.Exists(Path.GetDirectoryName(_keyFile)))
        {
            Directory.Delete(Path.GetDirectoryName(_keyFile)!, recursive: true);
        }
    }

    [Fact]
    public async Task The_first_start_writes_one_working_admin_key_to_a_private_file_not_the_log_and_a_restart_writes_none()
    {
        var serviceId = "boot-" + Guid.NewGuid().ToString("N")[..8];
        var first = new CapturingLoggerProvider();
        string key;
        await using (var host = await StartAsync(serviceId, auth: true, first))
        {
            key = SingleGeneratedKey(first);
            if (!OperatingSystem.IsWindows())
            {
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(_keyFile));
            }

            Assert.DoesNotContain(first.Lines, l => l.Contains(key, StringComparison.Ordinal) || KeyPattern().IsMatch(l));
            await AssertAdminAsync(host, key);
        }

        var written = File.GetLastWriteTimeUtc(_keyFile);
        var second = new CapturingLoggerProvider();
        await using (var host = await StartAsync(serviceId, auth: true, second))
        {
            Assert.DoesNotContain(second.Lines, l => l.Contains(Generated, StringComparison.Ordinal));
            Assert.True(second.Lines.Count > 10, $"only {second.Lines.Count} lines captured: the capture itself is broken");
            Assert.Equal(written, File.GetLastWriteTimeUtc(_keyFile));
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

        // A start that took the lease and created its key, then died before writing it and completing: its lease has
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

    [Fact]
    public void A_configured_key_under_128_bits_refuses_to_start()
    {
        var (id, _) = ApiKeys.Generate();
        foreach (var weak in new[] { $"cvk_{id}_short", $"cvk_{id}_{new string('a', 21)}", $"cvk_{id}_has spaces and is long enough" })
        {
            var refused = Assert.Throws<InvalidOperationException>(() => ConveyorTestHost.StartAsync(
                _nats.Url, _redis.ConnectionString, "boot-weak", new Dictionary<string, string?> { ["Conveyor:Auth:Enabled"] = "true", ["Conveyor:Auth:BootstrapKey"] = weak }).GetAwaiter().GetResult());
            Assert.Contains("128 bits", refused.Message, StringComparison.Ordinal);
            Assert.DoesNotContain(weak, refused.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Changing_the_configured_key_revokes_the_one_it_replaces()
    {
        var serviceId = "boot-" + Guid.NewGuid().ToString("N")[..8];
        string generated;
        await using (var host = await StartAsync(serviceId, auth: true, new CapturingLoggerProvider()))
        {
            generated = File.ReadAllText(_keyFile).Trim();
        }

        var first = ApiKeys.Generate().Key;
        var second = ApiKeys.Generate().Key;
        await using (var host = await StartAsync(serviceId, auth: true, new CapturingLoggerProvider(), first))
        {
            await AssertAdminAsync(host, first);
            await AssertRevokedAsync(host, generated);
        }

        await using (var host = await StartAsync(serviceId, auth: true, new CapturingLoggerProvider(), second))
        {
            await AssertAdminAsync(host, second);
            await AssertRevokedAsync(host, first);
        }
    }

    private Task<ConveyorTestHost> StartAsync(string serviceId, bool auth, CapturingLoggerProvider logs, string? configured = null) =>
        ConveyorTestHost.StartAsync(
            _nats.Url,
            _redis.ConnectionString,
            serviceId,
            new Dictionary<string, string?>
            {
                ["Conveyor:Auth:Enabled"] = auth ? "true" : "false",
                ["Conveyor:Auth:BootstrapKeyFile"] = _keyFile,
                ["Conveyor:Auth:BootstrapKey"] = configured,
            },
            builder =>
            {
                builder.Logging.SetMinimumLevel(LogLevel.Information);
                builder.Logging.AddProvider(logs);
            });

    /// <summary>The key the one generated-key log line points to, read from its file; fails on none or more than one line.</summary>
    private string SingleGeneratedKey(CapturingLoggerProvider logs)
    {
        var lines = logs.Lines.Where(l => l.Contains(Generated, StringComparison.Ordinal)).ToList();
        // One log call; the capture writes message and structured state on one line, so one line per call.
        Assert.True(lines.Count == 1, $"{lines.Count} generated-key lines:\n{string.Join("\n", lines)}");
        Assert.Contains(_keyFile, lines[0], StringComparison.Ordinal);
        var keys = KeyPattern().Matches(File.ReadAllText(_keyFile)).Select(m => m.Value).ToList();
        return Assert.Single(keys);
    }

    private static async Task AssertRevokedAsync(ConveyorTestHost host, string key)
    {
        using var client = Client(host, key);
        using var refused = await client.GetAsync("/keys");
        await ProblemAssert.SaysAsync(refused, HttpStatusCode.Unauthorized, "unauthorized", "revoked");
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
