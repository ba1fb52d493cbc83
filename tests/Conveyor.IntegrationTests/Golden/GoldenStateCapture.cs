using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Conveyor.Api.Security;
using Conveyor.Grains;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Runs;
using Conveyor.Testing;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Storage;
using StackExchange.Redis;

namespace Conveyor.IntegrationTests.Golden;

/// <summary>Runs only when <c>CONVEYOR_GOLDEN_CAPTURE</c> names the directory a new snapshot goes to.</summary>
public sealed class GoldenCaptureFactAttribute : FactAttribute
{
    /// <summary>The environment variable that asks for a capture.</summary>
    public const string Variable = "CONVEYOR_GOLDEN_CAPTURE";

    public GoldenCaptureFactAttribute()
    {
        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable(Variable)))
        {
            Skip = $"captures a golden snapshot only when {Variable} names its directory";
        }
    }
}

/// <summary>
/// Writes a golden snapshot: the engine of this commit, on real servers, is given one of everything it stores — a
/// namespace, an API key, a secret, resource definitions, pipelines using every option, resources, and runs in every
/// state a later version must carry on (finished, failed, queued, in flight, waiting for a retry, stored in the earlier
/// whole-state layout) — then stopped, and every Redis key it wrote is saved with a manifest. <see cref="GoldenStateTests"/>
/// reads each snapshot with the current engine. Run it once per release that changes what is stored:
/// <c>CONVEYOR_GOLDEN_CAPTURE=$PWD/tests/Conveyor.IntegrationTests/Golden/&lt;date&gt;-&lt;commit&gt; dotnet test
/// tests/Conveyor.IntegrationTests --filter "FullyQualifiedName~GoldenStateCapture"</c>.
/// </summary>
public sealed class GoldenStateCapture
{
    private const string Ns = "golden";

    [GoldenCaptureFact]
    public async Task Capture_a_snapshot_of_everything_the_engine_stores()
    {
        var directory = Environment.GetEnvironmentVariable(GoldenCaptureFactAttribute.Variable)!;
        Directory.CreateDirectory(directory);
        var serviceId = "golden";
        var adminKey = ApiKeys.Generate().Key;
        var secretsKey = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

        await using var nats = await NatsServerProcess.StartNewAsync();
        await using var redis = await RedisServerProcess.StartNewAsync();
        var host = await ConveyorTestHost.StartAsync(nats.Url, redis.ConnectionString, serviceId, new Dictionary<string, string?>
        {
            ["Conveyor:Auth:Enabled"] = "true",
            ["Conveyor:Auth:BootstrapKey"] = adminKey,
            ["Conveyor:Secrets:Key"] = secretsKey,
        });
        var runs = new Dictionary<string, Guid>();
        string operatorKey;
        try
        {
            var api = new GoldenClient(host.Http, adminKey);
            // Drivers: the chain's answer (a resource named "broken" fails its build), and drivers that never answer.
            await using var build = await RawDriver.StartAsync(nats.Url, "build", "drivers.build.resources.>", m =>
                JsonNode.Parse(m.GetProperty("payload").GetString()!)!["name"]!.GetValue<string>() == "broken"
                    ? (false, "compile error", null)
                    : (true, "built", new JsonObject { ["image"] = "registry.local/web:1" }));
            await using var test = await RawDriver.StartAsync(nats.Url, "test", "drivers.test.resources.>", _ => (true, "tests passed", new JsonObject { ["passed"] = 42 }));
            await using var deploy = await RawDriver.StartAsync(nats.Url, "deploy", "drivers.deploy.resources.>", _ => (true, "deployed", null));
            await using var flaky = await RawDriver.StartAsync(nats.Url, "flaky", "drivers.flaky.resources.>", _ => (false, "flaked", new JsonObject { ["try"] = 1 }));
            await using var gate = await RawDriver.StartAsync(nats.Url, "gate", "drivers.gate.resources.>", _ => Task.FromResult<(bool, string, JsonNode?)?>(null));
            await using var legacy = await RawDriver.StartAsync(nats.Url, "legacy", "drivers.legacy.resources.>", _ => Task.FromResult<(bool, string, JsonNode?)?>(null));

            await api.SendAsync(HttpMethod.Post, "/namespaces", new { name = Ns }, HttpStatusCode.Created);
            var key = await api.SendAsync(HttpMethod.Post, "/keys", new { name = "golden-operator", role = "operator", namespaces = new[] { Ns } }, HttpStatusCode.Created);
            operatorKey = key.GetProperty("key").GetString()!;
            await api.SendAsync(HttpMethod.Put, $"/namespaces/{Ns}/secrets/DB_PASSWORD", new { value = "golden-password" });
            await api.SendAsync(HttpMethod.Post, $"/namespaces/{Ns}/resource-definitions", new
            {
                name = "app", version = "1.0.0", description = "A deployable application",
                schema = new { type = "object", properties = new { image = new { type = "string" } }, required = new[] { "image" } },
            }, HttpStatusCode.Created);
            await api.SendAsync(HttpMethod.Post, "/resource-definitions", new { name = "plain", version = "2", schema = new { type = "object" } }, HttpStatusCode.Created);

            await api.SendAsync(HttpMethod.Post, $"/namespaces/{Ns}/pipelines", new
            {
                name = "ship", resource = "app", description = "build, test, deploy", version = "1.2.0",
                metadata = new Dictionary<string, string> { ["team"] = "core" },
                timeout = "1h", failurePolicy = "failFast", retry = new { maxAttempts = 1 },
                variables = new Dictionary<string, string> { ["REGION"] = "eu-west" },
                steps = new object[]
                {
                    new { id = "build", name = "Build", driver = "build", retry = new { maxAttempts = 2, initialDelay = "200ms", maxDelay = "1s", multiplier = 2, jitter = 0 }, timeout = "10m", @params = new { target = "linux/amd64" } },
                    new { id = "test", driver = "test", dependsOn = new[] { "build" }, allowFailure = true },
                    new { id = "deploy", driver = "deploy", dependsOn = new[] { "build", "test" }, secrets = new[] { "DB_PASSWORD" }, @params = new { channel = "stable" } },
                },
            }, HttpStatusCode.Created);
            await api.SendAsync(HttpMethod.Post, $"/namespaces/{Ns}/pipelines", new
            {
                name = "nightly", resource = "app",
                concurrencyGroup = new { key = "spec.image", onConflict = "cancel-in-progress" },
                schedules = new[] { new { name = "nightly", cron = "0 3 * * *", timeZone = "Europe/Berlin", resource = "web", priority = 2, missedFire = "skip" } },
                webhooks = new[] { new { name = "github", secret = "golden-hook-secret", resource = new Dictionary<string, string> { ["name"] = "/repository/name", ["spec.image"] = "/image" }, priority = 4 } },
                steps = new[] { new { id = "report", driver = "report" } },
            }, HttpStatusCode.Created);
            await api.SendAsync(HttpMethod.Post, $"/namespaces/{Ns}/pipelines", new
            {
                name = "gated", resource = "app", concurrency = 1, steps = new[] { new { id = "hold", driver = "gate" } },
            }, HttpStatusCode.Created);
            await api.SendAsync(HttpMethod.Post, $"/namespaces/{Ns}/pipelines", new
            {
                name = "flaky", resource = "app",
                steps = new object[]
                {
                    // The backoff outlasts the capture, so the snapshot holds the step waiting for its second attempt.
                    new { id = "try", driver = "flaky", retry = new { maxAttempts = 3, initialDelay = "2m", jitter = 0 } },
                    new { id = "after", driver = "test", dependsOn = new[] { "try" } },
                },
            }, HttpStatusCode.Created);
            await api.SendAsync(HttpMethod.Post, $"/namespaces/{Ns}/pipelines", new
            {
                name = "legacy", resource = "app",
                steps = new[] { new { id = "one", driver = "legacy" }, new { id = "two", driver = "deploy" } },
            }, HttpStatusCode.Created);

            // Finished runs: one started by a resource (succeeded), one failed after its retry, one manual with params.
            var web = await api.SendAsync(HttpMethod.Post, $"/namespaces/{Ns}/resources", new { name = "web", resource = "app", pipeline = "ship", spec = new { image = "nginx:1.27" } }, HttpStatusCode.Created);
            runs["succeeded"] = Guid.Parse(web.GetProperty("runid").GetString()!);
            await api.WaitForRunAsync(Ns, runs["succeeded"], r => r.GetProperty("status").GetString() == "Succeeded", "succeeds");
            var broken = await api.SendAsync(HttpMethod.Post, $"/namespaces/{Ns}/resources", new { name = "broken", resource = "app", pipeline = "ship", spec = new { image = "nginx:broken" } }, HttpStatusCode.Created);
            runs["failed"] = Guid.Parse(broken.GetProperty("runid").GetString()!);
            await api.WaitForRunAsync(Ns, runs["failed"], r => r.GetProperty("status").GetString() == "Failed", "fails");
            var manual = await api.SendAsync(HttpMethod.Post, $"/namespaces/{Ns}/pipelines/ship/runs", new { resource = "web", priority = 4, @params = new { channel = "beta" } }, HttpStatusCode.Created, idempotencyKey: "release-1");
            runs["manual"] = manual.GetProperty("id").GetGuid();
            await api.WaitForRunAsync(Ns, runs["manual"], r => r.GetProperty("status").GetString() == "Succeeded", "succeeds");

            // Unfinished runs: one holding its queue's only slot with its step in flight, one queued behind it, one
            // waiting for a retry, one in flight that is then rewritten in the earlier whole-state layout.
            await api.SendAsync(HttpMethod.Post, $"/namespaces/{Ns}/resources", new { name = "gate-a", resource = "app", spec = new { image = "busybox" } }, HttpStatusCode.Created);
            var inflight = await api.SendAsync(HttpMethod.Post, $"/namespaces/{Ns}/pipelines/gated/runs", new { resource = "gate-a" }, HttpStatusCode.Created);
            runs["inflight"] = inflight.GetProperty("id").GetGuid();
            await api.WaitForRunAsync(Ns, runs["inflight"], r => GoldenClient.Step(r, "hold").GetProperty("attempts")[0].TryGetProperty("publishedAt", out var p) && p.ValueKind == JsonValueKind.String, "dispatches its step");
            var queued = await api.SendAsync(HttpMethod.Post, $"/namespaces/{Ns}/pipelines/gated/runs", new { resource = "gate-a", priority = 5 }, HttpStatusCode.Created);
            runs["queued"] = queued.GetProperty("id").GetGuid();
            await api.WaitForRunAsync(Ns, runs["queued"], r => r.GetProperty("status").GetString() == "Queued", "is queued");
            var retrying = await api.SendAsync(HttpMethod.Post, $"/namespaces/{Ns}/pipelines/flaky/runs", new { resource = "web" }, HttpStatusCode.Created);
            runs["retrying"] = retrying.GetProperty("id").GetGuid();
            await api.WaitForRunAsync(Ns, runs["retrying"], r => GoldenClient.StepStatus(r, "try") == "Retrying", "waits for a retry");
            var old = await api.SendAsync(HttpMethod.Post, $"/namespaces/{Ns}/pipelines/legacy/runs", new { resource = "web" }, HttpStatusCode.Created);
            runs["legacy"] = old.GetProperty("id").GetGuid();
            await api.WaitForRunAsync(Ns, runs["legacy"], r => GoldenClient.Step(r, "one").GetProperty("attempts")[0].TryGetProperty("publishedAt", out var p) && p.ValueKind == JsonValueKind.String, "dispatches its step");

            // A resource without a pipeline, in the default namespace: announced to drivers, nothing more.
            await api.SendAsync(HttpMethod.Post, "/resources", new { name = "solo", resource = "plain", spec = new { size = 3 } }, HttpStatusCode.Created);

            await RewriteInEarlierLayoutAsync(host, redis.ConnectionString, serviceId, runs["legacy"]);
        }
        finally
        {
            await host.DisposeAsync();
        }

        await RedisSnapshot.SaveAsync(Path.Combine(directory, GoldenManifest.RedisFileName), await RedisSnapshot.TakeAsync(redis.ConnectionString));
        await new GoldenManifest
        {
            Commit = Environment.GetEnvironmentVariable("CONVEYOR_GOLDEN_COMMIT") ?? "",
            CapturedAt = DateTimeOffset.UtcNow,
            ServiceId = serviceId,
            AdminKey = adminKey,
            OperatorKey = operatorKey,
            SecretsKey = secretsKey,
            Namespace = Ns,
            Runs = runs,
        }.SaveAsync(directory);
    }

    /// <summary>
    /// Moves a run from the per-step hash into the whole-state record of the Orleans grain storage, where versions
    /// before the hash layout kept every run.
    /// </summary>
    private static async Task RewriteInEarlierLayoutAsync(ConveyorTestHost host, string redis, string serviceId, Guid runId)
    {
        var grain = host.Services.GetRequiredService<IGrainFactory>().GetGrain<IPipelineRunGrain>(runId).GetGrainId();
        var stored = await host.Services.GetRequiredService<IRunStore>().ReadAsync(grain)
            ?? throw new InvalidOperationException($"run {runId} is not stored");
        var whole = new GrainStorageRunStore(host.Services.GetRequiredKeyedService<IGrainStorage>(ConveyorStorage.Name));
        await whole.WriteAsync(grain, stored.Run, null, RunChanges.All);
        await using var connection = await ConnectionMultiplexer.ConnectAsync(redis);
        Assert.True(await connection.GetDatabase().KeyDeleteAsync($"conveyor:{serviceId}:run:{runId:N}"), "the run's hash exists");
    }
}
