using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Conveyor.Testing;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Conveyor.IntegrationTests.Golden;

/// <summary>
/// Every golden snapshot under <c>Golden/</c> — Redis as an earlier release left it — is read by the current engine:
/// each stored object comes back through the API, and each unfinished run carries on to its end when its drivers
/// answer. A change that cannot read what an earlier release stored fails here.
/// </summary>
public sealed class GoldenStateTests
{
    public static TheoryData<string> Snapshots()
    {
        var data = new TheoryData<string>();
        foreach (var directory in Directory.GetDirectories(Path.Combine(AppContext.BaseDirectory, "Golden")).Order(StringComparer.Ordinal))
        {
            data.Add(Path.GetFileName(directory));
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Snapshots))]
    public async Task A_snapshot_written_by_an_earlier_release_is_read_and_its_runs_carry_on(string snapshot)
    {
        var directory = Path.Combine(AppContext.BaseDirectory, "Golden", snapshot);
        var manifest = await GoldenManifest.LoadAsync(directory);
        var ns = manifest.Namespace;
        var runs = manifest.Runs;

        await using var nats = await NatsServerProcess.StartNewAsync();
        await using var redis = await RedisServerProcess.StartNewAsync();
        await RedisSnapshot.RestoreAsync(redis.ConnectionString, await RedisSnapshot.LoadAsync(Path.Combine(directory, GoldenManifest.RedisFileName)));
        await using var host = await ConveyorTestHost.StartAsync(nats.Url, redis.ConnectionString, manifest.ServiceId, new Dictionary<string, string?>
        {
            ["Conveyor:Auth:Enabled"] = "true",
            ["Conveyor:Auth:BootstrapKey"] = manifest.AdminKey,
            ["Conveyor:Secrets:Key"] = manifest.SecretsKey,
        });
        // The drivers the unfinished runs wait for; the messages dispatched before the snapshot were on another server.
        await using var flaky = await RawDriver.StartAsync(nats.Url, "flaky", "drivers.flaky.resources.>", _ => (true, "second time lucky", new JsonObject { ["try"] = 2 }));
        await using var test = await RawDriver.StartAsync(nats.Url, "test", "drivers.test.resources.>");
        // The in-flight run's step is answered below, by hand (a re-publish of it, soon after the capture, is not).
        await using var gate = await RawDriver.StartAsync(nats.Url, "gate", "drivers.gate.resources.>", m => Task.FromResult<(bool, string, JsonNode?)?>(
            m.GetProperty("run_id").GetGuid() == runs["inflight"] ? null : (true, "gate open", null)));
        await using var deploy = await RawDriver.StartAsync(nats.Url, "deploy", "drivers.deploy.resources.>");
        await using var build = await RawDriver.StartAsync(nats.Url, "build", "drivers.build.resources.>");
        var api = new GoldenClient(host.Http, manifest.AdminKey);

        // Security objects.
        var namespaces = await api.GetAsync("/namespaces");
        Assert.Contains(namespaces.GetProperty("items").EnumerateArray(), n => n.GetProperty("name").GetString() == ns);
        var keys = await api.GetAsync("/keys");
        Assert.Contains(keys.GetProperty("items").EnumerateArray(), k => k.GetProperty("name").GetString() == "golden-operator");
        await api.GetAsync($"/namespaces/{ns}/pipelines/ship", asKey: manifest.OperatorKey);
        await api.SendAsync(HttpMethod.Get, "/pipelines/ship", expected: HttpStatusCode.Forbidden, asKey: manifest.OperatorKey);
        var secret = await api.GetAsync($"/namespaces/{ns}/secrets/DB_PASSWORD");
        Assert.Equal(1, secret.GetProperty("version").GetInt32());

        // Definitions, pipelines with every option, resources with the driver results of their run.
        var definition = await api.GetAsync($"/namespaces/{ns}/resource-definitions/app");
        Assert.Equal("string", definition.GetProperty("schema").GetProperty("properties").GetProperty("image").GetProperty("type").GetString());
        Assert.Equal("2", (await api.GetAsync("/resource-definitions/plain")).GetProperty("version").GetString());
        var ship = await api.GetAsync($"/namespaces/{ns}/pipelines/ship");
        Assert.Equal("1.2.0", ship.GetProperty("version").GetString());
        Assert.Equal("core", ship.GetProperty("metadata").GetProperty("team").GetString());
        Assert.Equal("eu-west", ship.GetProperty("variables").GetProperty("REGION").GetString());
        var build1 = ship.GetProperty("steps")[0];
        Assert.Equal(2, build1.GetProperty("retry").GetProperty("maxAttempts").GetInt32());
        Assert.Equal("linux/amd64", build1.GetProperty("params").GetProperty("target").GetString());
        Assert.True(build1.TryGetProperty("timeout", out _));
        Assert.Equal("DB_PASSWORD", ship.GetProperty("steps")[2].GetProperty("secrets")[0].GetString());
        Assert.True(ship.GetProperty("steps")[1].GetProperty("allowFailure").GetBoolean());
        var nightly = await api.GetAsync($"/namespaces/{ns}/pipelines/nightly");
        Assert.Equal("0 3 * * *", nightly.GetProperty("schedules")[0].GetProperty("cron").GetString());
        Assert.Equal("Europe/Berlin", nightly.GetProperty("schedules")[0].GetProperty("timeZone").GetString());
        Assert.Equal("github", nightly.GetProperty("webhooks")[0].GetProperty("name").GetString());
        Assert.Equal("spec.image", nightly.GetProperty("concurrencyGroup").GetProperty("key").GetString());
        Assert.Equal(1, (await api.GetAsync($"/namespaces/{ns}/pipelines/gated")).GetProperty("concurrency").GetInt32());
        var web = await api.GetAsync($"/namespaces/{ns}/resources/app/web");
        Assert.Equal("nginx:1.27", web.GetProperty("spec").GetProperty("image").GetString());
        var results = web.GetProperty("metadata");
        Assert.Contains("registry.local/web:1", results.GetProperty("driverresults.build").GetString());
        Assert.Contains("tests passed", results.GetProperty("driverresults.test").GetString());
        Assert.Equal(3, (await api.GetAsync("/resources/plain/solo")).GetProperty("spec").GetProperty("size").GetInt32());

        // Finished runs, as they ended.
        var succeeded = await api.GetAsync($"/namespaces/{ns}/runs/{runs["succeeded"]}");
        Assert.Equal("Succeeded", succeeded.GetProperty("status").GetString());
        Assert.All(succeeded.GetProperty("steps").EnumerateArray(), s => Assert.Equal("Succeeded", s.GetProperty("status").GetString()));
        Assert.Equal("registry.local/web:1", GoldenClient.Step(succeeded, "build").GetProperty("data").GetProperty("image").GetString());
        Assert.Equal(42, GoldenClient.Step(succeeded, "test").GetProperty("attempts")[0].GetProperty("data").GetProperty("passed").GetInt32());
        var failed = await api.GetAsync($"/namespaces/{ns}/runs/{runs["failed"]}");
        Assert.Equal("Failed", failed.GetProperty("status").GetString());
        Assert.Equal(["Failed", "Skipped", "Skipped"], failed.GetProperty("steps").EnumerateArray().Select(s => s.GetProperty("status").GetString()));
        Assert.Equal(2, GoldenClient.Step(failed, "build").GetProperty("attempts").GetArrayLength());
        var manual = await api.GetAsync($"/namespaces/{ns}/runs/{runs["manual"]}");
        Assert.Equal(("Succeeded", "manual", "release-1", 4), (manual.GetProperty("status").GetString(), manual.GetProperty("trigger").GetString(), manual.GetProperty("triggerId").GetString(), manual.GetProperty("priority").GetInt32()));
        Assert.Equal("beta", manual.GetProperty("params").GetProperty("channel").GetString());
        var listed = await api.GetAsync($"/namespaces/{ns}/runs?pipeline=ship");
        Assert.Equal(
            new[] { runs["manual"], runs["failed"], runs["succeeded"] }.Order(),
            listed.GetProperty("items").EnumerateArray().Select(r => r.GetProperty("id").GetGuid()).Order());
        // The manual run's idempotency key still names it.
        var again = await api.SendAsync(HttpMethod.Post, $"/namespaces/{ns}/pipelines/ship/runs", new { resource = "web" }, idempotencyKey: "release-1");
        Assert.Equal(runs["manual"], again.GetProperty("id").GetGuid());

        // The queue as it was: one run holding the slot, one waiting.
        var queue = await api.GetAsync($"/namespaces/{ns}/pipelines/gated/queue");
        Assert.Equal(runs["inflight"], Assert.Single(queue.GetProperty("active").EnumerateArray()).GetProperty("id").GetGuid());
        Assert.Equal(runs["queued"], Assert.Single(queue.GetProperty("queued").EnumerateArray()).GetProperty("id").GetGuid());
        Assert.Equal("Queued", (await api.GetAsync($"/namespaces/{ns}/runs/{runs["queued"]}")).GetProperty("status").GetString());

        // The run waiting for a retry makes its second attempt once read (its backoff is long over) and finishes.
        var retried = await api.WaitForRunAsync(ns, runs["retrying"], r => r.GetProperty("status").GetString() == "Succeeded", "retries and succeeds");
        Assert.Equal(2, GoldenClient.Step(retried, "try").GetProperty("attempts").GetArrayLength());

        // The in-flight run's driver answers the way an original driver does (no step, no attempt): the run
        // finishes, gives its slot to the queued run, which runs in turn.
        var inflight = await api.GetAsync($"/namespaces/{ns}/runs/{runs["inflight"]}");
        Assert.Equal(("Running", "Dispatched"), (inflight.GetProperty("status").GetString(), GoldenClient.StepStatus(inflight, "hold")));
        await PublishResultAsync(nats.Url, runs["inflight"], "gate", step: null, attempt: null);
        await api.WaitForRunAsync(ns, runs["inflight"], r => r.GetProperty("status").GetString() == "Succeeded", "finishes on its driver's answer");
        await api.WaitForRunAsync(ns, runs["queued"], r => r.GetProperty("status").GetString() == "Succeeded", "is admitted and finishes");

        // The run stored in the earlier whole-state layout carries on from its in-flight step.
        var legacy = await api.GetAsync($"/namespaces/{ns}/runs/{runs["legacy"]}");
        Assert.Equal(("Running", "Dispatched", "Pending"), (legacy.GetProperty("status").GetString(), GoldenClient.StepStatus(legacy, "one"), GoldenClient.StepStatus(legacy, "two")));
        await PublishResultAsync(nats.Url, runs["legacy"], "legacy", step: "one", attempt: 1);
        await api.WaitForRunAsync(ns, runs["legacy"], r => r.GetProperty("status").GetString() == "Succeeded", "finishes");

        // A failed run is retried from its failure.
        await api.SendAsync(HttpMethod.Post, $"/namespaces/{ns}/runs/{runs["failed"]}/retry");
        var rerun = await api.WaitForRunAsync(ns, runs["failed"], r => r.GetProperty("status").GetString() == "Succeeded", "succeeds when retried");
        Assert.Equal(3, GoldenClient.Step(rerun, "build").GetProperty("attempts").GetArrayLength());
        Assert.Equal(2, rerun.GetProperty("runAttempt").GetInt32());
    }

    /// <summary>Publishes a driver result as a driver would; without a step it is an original driver's.</summary>
    private static async Task PublishResultAsync(string natsUrl, Guid runId, string driver, string? step, int? attempt)
    {
        await using var connection = new NatsConnection(NatsOpts.Default with { Url = natsUrl });
        var js = new NatsJSContext(connection);
        var body = new JsonObject
        {
            ["event"] = "driver.result",
            ["run_id"] = runId.ToString(),
            ["driverresult"] = new JsonObject { ["success"] = true, ["message"] = $"{driver} done", ["data"] = new JsonObject { ["by"] = driver }, ["driver"] = driver },
        };
        var headers = new NatsHeaders();
        if (step is not null)
        {
            headers["Conveyor-Step-Id"] = step;
            headers["Conveyor-Attempt"] = attempt!.Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        var ack = await js.PublishAsync("pipelines.driver.result", Encoding.UTF8.GetBytes(body.ToJsonString()), headers: headers);
        ack.EnsureSuccess();
    }
}
