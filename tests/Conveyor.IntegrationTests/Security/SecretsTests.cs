using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Conveyor.Api.Security;
using Conveyor.Driver.Sdk;
using Conveyor.Testing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using NATS.Client.Core;
using StackExchange.Redis;

namespace Conveyor.IntegrationTests.Security;

/// <summary>A host with authentication and a secrets key whose every log line is captured.</summary>
public sealed class SecretsFixture : IAsyncLifetime
{
    private NatsServerProcess? _nats;
    private RedisServerProcess? _redis;
    private ConveyorTestHost? _host;

    public string AdminKey { get; } = ApiKeys.Generate().Key;

    public CapturingLoggerProvider Logs { get; } = new();

    public NatsServerProcess Nats => _nats!;

    public RedisServerProcess Redis => _redis!;

    public ConveyorTestHost Host => _host!;

    public async Task InitializeAsync()
    {
        _nats = await NatsServerProcess.StartNewAsync();
        _redis = await RedisServerProcess.StartNewAsync();
        _host = await ConveyorTestHost.StartAsync(
            _nats.Url,
            _redis.ConnectionString,
            "secrets-" + Guid.NewGuid().ToString("N")[..8],
            new Dictionary<string, string?>
            {
                ["Conveyor:Auth:Enabled"] = "true",
                ["Conveyor:Auth:BootstrapKey"] = AdminKey,
                ["Conveyor:Secrets:Key"] = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)),
            },
            builder =>
            {
                builder.Logging.SetMinimumLevel(LogLevel.Trace);
                builder.Logging.AddFilter<ConsoleLoggerProvider>(level => level >= LogLevel.Warning);
                builder.Logging.AddProvider(Logs);
            });
    }

    public Task DisposeAsync() => Disposal.InOrderAsync(_host, _redis, _nats);
}

/// <summary>Secrets: write-only over the API, encrypted at rest, fetched by the step that references them, and nowhere else.</summary>
public sealed class SecretsTests(SecretsFixture fx) : IClassFixture<SecretsFixture>
{
    private static readonly TimeSpan RunTimeout = Deadlines.Event;

    private sealed class SecretDriver(string name, string type, ConcurrentQueue<string> fetched) : IDriver
    {
        public string Name => name;

        public IReadOnlyCollection<string> Resources => [type];

        public async Task<DriverResult> ReconcileAsync(DriverEvent driverEvent, DriverContext context, CancellationToken cancellationToken)
        {
            var value = await context.GetSecretAsync("DB_PASSWORD", cancellationToken);
            var all = await context.GetSecretsAsync(cancellationToken);
            fetched.Enqueue(value);
            await context.Logger.LogAsync($"connected with a password of {value.Length} characters in {driverEvent.Variables["REGION"]}", cancellationToken: cancellationToken);
            var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(value)));
            return DriverResult.Ok("deployed", new { sha256 = hash, names = all.Keys.Order().ToArray() });
        }
    }

    [Fact]
    public async Task A_secret_value_appears_nowhere_but_in_the_step_drivers_fetch_and_rotation_reaches_the_next_dispatch()
    {
        var first = "pw-" + Guid.NewGuid().ToString("N");
        var second = "pw-" + Guid.NewGuid().ToString("N");
        var ns = EngineFixture.Unique("sec");
        var type = EngineFixture.Unique("db");
        var driverName = EngineFixture.Unique("migrate");

        // Everything on NATS, for the whole test.
        var natsMessages = new ConcurrentQueue<string>();
        await using var spy = new NatsConnection(NatsOpts.Default with { Url = fx.Nats.Url, Name = "spy" });
        await spy.ConnectAsync();
        using var spyStop = new CancellationTokenSource();
        var spyLoop = Task.Run(async () =>
        {
            await foreach (var msg in spy.SubscribeAsync<byte[]>(">", cancellationToken: spyStop.Token))
            {
                var headers = msg.Headers is null ? "" : string.Join(";", msg.Headers.Select(h => h.Key + "=" + h.Value));
                natsMessages.Enqueue($"{msg.Subject} {headers} {(msg.Data is null ? "" : Encoding.UTF8.GetString(msg.Data))}");
            }
        });
        await spy.PingAsync();

        // Every API response the operator sees.
        var responses = new ConcurrentQueue<string>();
        using var api = new HttpClient(new RecordingHandler(responses)) { BaseAddress = fx.Host.Address };
        api.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", fx.AdminKey);

        async Task<JsonElement> Send(HttpMethod method, string path, object? body, HttpStatusCode expected)
        {
            using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
            using var response = await api.SendAsync(request);
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == expected, $"{method} {path}: {(int)response.StatusCode} {text}");
            return text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone();
        }

        await Send(HttpMethod.Post, "/namespaces", new { name = ns }, HttpStatusCode.Created);
        var put = await Send(HttpMethod.Put, $"/namespaces/{ns}/secrets/DB_PASSWORD", new { value = first }, HttpStatusCode.OK);
        Assert.Equal(1, put.GetProperty("version").GetInt32());
        await Send(HttpMethod.Put, $"/namespaces/{ns}/secrets/OTHER", new { value = "not for this step" }, HttpStatusCode.OK);
        await Send(HttpMethod.Post, $"/namespaces/{ns}/resource-definitions", new { name = type, version = "1", schema = new { type = "object" } }, HttpStatusCode.Created);

        // A step may only name secrets that exist.
        var rejected = await Send(HttpMethod.Post, $"/namespaces/{ns}/pipelines", new
        {
            name = "bad", resource = type,
            steps = new[] { new { id = "migrate", driver = driverName, secrets = new[] { "NOPE" } } },
        }, HttpStatusCode.BadRequest);
        Assert.Contains("steps[0].secrets", rejected.GetProperty("errors").EnumerateObject().Select(p => p.Name));

        await Send(HttpMethod.Post, $"/namespaces/{ns}/pipelines", new
        {
            name = "ship", resource = type, variables = new Dictionary<string, string> { ["REGION"] = "eu-west" },
            steps = new[] { new { id = "migrate", driver = driverName, secrets = new[] { "DB_PASSWORD" } } },
        }, HttpStatusCode.Created);

        var fetched = new ConcurrentQueue<string>();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        // Every line the SDK (manager and NATS client) logs, at every level, is scanned too.
        var sdkLogs = new CapturingLoggerProvider();
        using var sdkLogging = LoggerFactory.Create(b => b.SetMinimumLevel(LogLevel.Trace).AddProvider(sdkLogs));
        await using var manager = new DriverManager(
            new SecretDriver(driverName, type, fetched),
            new DriverOptions { Name = driverName, Resources = [type], NatsUrl = fx.Nats.Url, ApiUrl = fx.Host.Address.ToString(), ShutdownGracePeriod = TimeSpan.FromSeconds(2) },
            sdkLogging);
        var running = manager.RunAsync(cts.Token);
        await manager.WaitUntilReadyAsync(cts.Token);

        var run1 = await RunAsync(Send, ns, type, "one");
        Assert.Equal(first, Assert.Single(fetched));
        var step = run1.GetProperty("steps")[0].GetProperty("attempts")[0];
        Assert.Equal(Sha(first), step.GetProperty("data").GetProperty("sha256").GetString());
        Assert.Equal(["DB_PASSWORD"], step.GetProperty("data").GetProperty("names").EnumerateArray().Select(n => n.GetString()));

        // Rotation: the next dispatch fetches the new value.
        var rotated = await Send(HttpMethod.Put, $"/namespaces/{ns}/secrets/DB_PASSWORD", new { value = second }, HttpStatusCode.OK);
        Assert.Equal(2, rotated.GetProperty("version").GetInt32());
        await RunAsync(Send, ns, type, "two");
        Assert.Equal([first, second], fetched.ToArray());

        // Reads of everything around it.
        await Send(HttpMethod.Get, $"/namespaces/{ns}/secrets", null, HttpStatusCode.OK);
        await Send(HttpMethod.Get, $"/namespaces/{ns}/secrets/DB_PASSWORD", null, HttpStatusCode.OK);
        await Send(HttpMethod.Get, $"/namespaces/{ns}/pipelines/ship", null, HttpStatusCode.OK);
        await Send(HttpMethod.Get, $"/namespaces/{ns}/runs", null, HttpStatusCode.OK);
        await Send(HttpMethod.Get, $"/namespaces/{ns}/runs/{run1.GetProperty("id").GetString()}/logs", null, HttpStatusCode.OK);
        await Send(HttpMethod.Get, $"/namespaces/{ns}/resources/{type}/one", null, HttpStatusCode.OK);

        // The dispatch carried a step token, not a value; once the attempt is over the token fetches nothing.
        var dispatch = natsMessages.First(m => m.StartsWith($"drivers.{driverName}.", StringComparison.Ordinal));
        var token = JsonDocument.Parse(dispatch[dispatch.IndexOf('{', StringComparison.Ordinal)..]).RootElement.GetProperty("step_token").GetString();
        Assert.StartsWith("cvs1.", token);
        using (var late = new HttpRequestMessage(HttpMethod.Get, "/step-secrets"))
        {
            late.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            using var answer = await new HttpClient { BaseAddress = fx.Host.Address }.SendAsync(late);
            Assert.Equal(HttpStatusCode.Forbidden, answer.StatusCode);
        }

        foreach (var forged in new[] { token![..^2] + "AA", "cvs1.abc.def", fx.AdminKey, "" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/step-secrets");
            request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + forged);
            using var answer = await new HttpClient { BaseAddress = fx.Host.Address }.SendAsync(request);
            Assert.Equal(HttpStatusCode.Unauthorized, answer.StatusCode);
        }

        await cts.CancelAsync();
        await running;
        await spyStop.CancelAsync();
        await spyLoop.ContinueWith(_ => { }, TaskScheduler.Default);

        Assert.Contains(natsMessages, m => m.Contains("connected with a password of", StringComparison.Ordinal));
        Assert.True(fx.Logs.Lines.Count > 50, $"only {fx.Logs.Lines.Count} log lines captured");
        // The SDK's own lines, from the manager and from the NATS client it drives, not just an empty capture.
        Assert.Contains(sdkLogs.Lines, l => l.Contains(typeof(DriverManager).FullName!, StringComparison.Ordinal));
        Assert.Contains(sdkLogs.Lines, l => l.Contains("NATS.Client", StringComparison.Ordinal));
        foreach (var secret in new[] { first, second })
        {
            Assert.DoesNotContain(natsMessages, m => m.Contains(secret, StringComparison.Ordinal));
            Assert.DoesNotContain(fx.Logs.Lines, l => l.Contains(secret, StringComparison.Ordinal));
            Assert.DoesNotContain(sdkLogs.Lines, l => l.Contains(secret, StringComparison.Ordinal));
            Assert.DoesNotContain(responses, r => r.Contains(secret, StringComparison.Ordinal));
        }

        // At rest: no Redis value holds the plaintext.
        await using var redis = await ConnectionMultiplexer.ConnectAsync(fx.Redis.ConnectionString);
        var server = redis.GetServer(redis.GetEndPoints()[0]);
        var db = redis.GetDatabase();
        var scanned = 0;
        await foreach (var key in server.KeysAsync(pattern: "*"))
        {
            var raw = await db.KeyTypeAsync(key) switch
            {
                RedisType.String => (string?)await db.StringGetAsync(key),
                RedisType.Hash => string.Join("\n", (await db.HashGetAllAsync(key)).Select(e => $"{e.Name}={e.Value}")),
                _ => null,
            };
            scanned++;
            Assert.False(raw?.Contains(first, StringComparison.Ordinal) == true || raw?.Contains(second, StringComparison.Ordinal) == true, $"plaintext in Redis key {key}");
        }

        Assert.True(scanned > 5, $"only {scanned} Redis keys scanned");
    }

    [Fact]
    public async Task Secret_routes_validate_and_never_return_a_value()
    {
        using var admin = new HttpClient { BaseAddress = fx.Host.Address };
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", fx.AdminKey);
        using (var badName = await admin.PutAsJsonAsync("/secrets/1-bad", new { value = "x" }))
        {
            await ProblemAssert.NamesFieldAsync(badName, "name");
        }

        using (var noValue = await admin.PutAsJsonAsync("/secrets/TOKEN", new { other = "x" }))
        {
            await ProblemAssert.NamesFieldAsync(noValue, "value");
        }

        using (var tooLong = await admin.PutAsJsonAsync("/secrets/TOKEN", new { value = new string('x', 70_000) }))
        {
            await ProblemAssert.SaysAsync(tooLong, HttpStatusCode.BadRequest, "validation", "exceeds");
        }

        var value = "v-" + Guid.NewGuid().ToString("N");
        using (var ok = await admin.PutAsJsonAsync("/secrets/TOKEN", new { value }))
        {
            var text = await ok.Content.ReadAsStringAsync();
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            Assert.DoesNotContain(value, text);
        }

        Assert.DoesNotContain(value, await admin.GetStringAsync("/secrets"));
        Assert.DoesNotContain(value, await admin.GetStringAsync("/secrets/TOKEN"));
        using (var viewer = new HttpClient { BaseAddress = fx.Host.Address })
        {
            var key = JsonDocument.Parse(await (await admin.PostAsJsonAsync("/keys", new { name = "v", role = "viewer", namespaces = new[] { "default" } })).Content.ReadAsStringAsync())
                .RootElement.GetProperty("key").GetString();
            viewer.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
            using var write = await viewer.PutAsJsonAsync("/secrets/TOKEN", new { value = "x" });
            await ProblemAssert.SaysAsync(write, HttpStatusCode.Forbidden, "forbidden", "operator role");
        }

        using (var deleted = await admin.DeleteAsync("/secrets/TOKEN"))
        {
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        }

        using var gone = await admin.GetAsync("/secrets/TOKEN");
        await ProblemAssert.SaysAsync(gone, HttpStatusCode.NotFound, "not-found", "secret TOKEN not found");
        Assert.DoesNotContain("TOKEN", await admin.GetStringAsync("/secrets"));
    }

    private static async Task<JsonElement> RunAsync(Func<HttpMethod, string, object?, HttpStatusCode, Task<JsonElement>> send, string ns, string type, string name)
    {
        var created = await send(HttpMethod.Post, $"/namespaces/{ns}/resources", new { name, resource = type, pipeline = "ship", spec = new { } }, HttpStatusCode.Created);
        var runId = created.GetProperty("runid").GetString();
        JsonElement run = default;
        await Eventually.TrueAsync(
            async () =>
            {
                run = await send(HttpMethod.Get, $"/namespaces/{ns}/runs/{runId}", null, HttpStatusCode.OK);
                return run.GetProperty("status").GetString() is "Succeeded" or "Failed" or "Cancelled" or "TimedOut";
            },
            RunTimeout,
            $"run {runId} should finish");
        Assert.True(run.GetProperty("status").GetString() == "Succeeded", run.ToString());
        return run;
    }

    private static string Sha(string value) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(value)));
}
