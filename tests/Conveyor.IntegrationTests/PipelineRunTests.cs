using System.Text.Json;
using System.Text.Json.Nodes;
using Conveyor.Testing;

namespace Conveyor.IntegrationTests;

[Collection(EngineCollection.Name)]
public sealed class PipelineRunTests(EngineFixture fx)
{
    private static readonly TimeSpan RunTimeout = Deadlines.Event;

    [Fact]
    public async Task Three_step_pipeline_runs_each_original_driver_once_in_order()
    {
        var type = EngineFixture.Unique("app");
        var (build, test, deploy) = (EngineFixture.Unique("build"), EngineFixture.Unique("test"), EngineFixture.Unique("deploy"));
        await fx.CreateDefinitionAsync(type);
        await fx.Host.PostJsonAsync("/pipelines", new
        {
            name = type + "-ship",
            resource = type,
            steps = new[]
            {
                new { id = "1", name = "build", driver = build },
                new { id = "2", name = "test", driver = test },
                new { id = "3", name = "deploy", driver = deploy },
            },
        });
        await using var d1 = await RawDriver.StartAsync(fx.Nats.Url, build, $"drivers.{build}.resources.{type}");
        await using var d2 = await RawDriver.StartAsync(fx.Nats.Url, test, $"drivers.{test}.resources.{type}");
        await using var d3 = await RawDriver.StartAsync(fx.Nats.Url, deploy, $"drivers.{deploy}.resources.{type}");

        var created = await fx.Host.PostJsonAsync("/resources", new { name = "web", resource = type, pipeline = type + "-ship", spec = new { image = "nginx" } });
        Assert.Equal("Resource created successfully", created.GetProperty("message").GetString());
        Assert.Equal("1", created.GetProperty("version").GetString());
        var runId = created.GetProperty("runid").GetString()!;

        var run = await fx.Host.WaitForRunAsync(runId, RunTimeout);
        Assert.Equal("Succeeded", run.GetProperty("status").GetString());
        var steps = run.GetProperty("steps").EnumerateArray().ToList();
        Assert.All(steps, s =>
        {
            Assert.Equal("Succeeded", s.GetProperty("status").GetString());
            Assert.Equal(1, s.GetProperty("attempt").GetInt32());
            Assert.Single(s.GetProperty("attempts").EnumerateArray());
        });

        // Each driver received exactly one message, in pipeline order, in the original's shape.
        var messages = new[] { d1, d2, d3 }.Select(d => Assert.Single(d.Received)).ToList();
        Assert.True(messages[0].At <= messages[1].At && messages[1].At <= messages[2].At);
        Assert.Equal(["create", "process", "process"], messages.Select(m => m.Message.GetProperty("event").GetString()));
        foreach (var (_, subject, message) in messages)
        {
            Assert.StartsWith("drivers.", subject, StringComparison.Ordinal);
            Assert.Equal(runId, message.GetProperty("run_id").GetString());
            Assert.Matches("^[0-9a-f]{24}$", message.GetProperty("id").GetString()!);
            Assert.Equal(JsonValueKind.String, message.GetProperty("payload").ValueKind);
        }

        // Step 3 sees the results of steps 1 and 2 in metadata["driverresults.<driver>"], as JSON strings.
        var lastPayload = JsonDocument.Parse(messages[2].Message.GetProperty("payload").GetString()!).RootElement;
        var meta = lastPayload.GetProperty("metadata");
        Assert.Equal("1", meta.GetProperty("version").GetString());
        var buildResult = JsonDocument.Parse(meta.GetProperty("driverresults." + build).GetString()!).RootElement;
        Assert.True(buildResult.GetProperty("success").GetBoolean());
        Assert.Equal(build, buildResult.GetProperty("driver").GetString());
        Assert.True(meta.TryGetProperty("driverresults." + test, out _));
        Assert.False(meta.TryGetProperty("driverresults." + deploy, out _));

        // The resource shows every driver's result, like the original's SaveDriverResult.
        var resource = await fx.Host.GetJsonAsync($"/resources/{type}/web");
        Assert.True(resource.GetProperty("metadata").TryGetProperty("driverresults." + deploy, out _));
    }

    [Fact]
    public async Task Failing_step_fails_the_run_and_later_steps_are_never_dispatched()
    {
        var type = EngineFixture.Unique("app");
        var (a, b, c) = (EngineFixture.Unique("a"), EngineFixture.Unique("b"), EngineFixture.Unique("c"));
        await fx.CreateDefinitionAsync(type);
        await fx.Host.PostJsonAsync("/pipelines", new
        {
            name = type,
            resource = type,
            steps = new[] { new { id = "1", name = "a", driver = a }, new { id = "2", name = "b", driver = b }, new { id = "3", name = "c", driver = c } },
        });
        await using var da = await RawDriver.StartAsync(fx.Nats.Url, a, $"drivers.{a}.resources.{type}");
        await using var db = await RawDriver.StartAsync(fx.Nats.Url, b, $"drivers.{b}.resources.{type}", _ => (false, "tests are red", null));
        await using var dc = await RawDriver.StartAsync(fx.Nats.Url, c, $"drivers.{c}.resources.{type}");

        var created = await fx.Host.PostJsonAsync("/resources", new { name = "web", resource = type, pipeline = type, spec = new { image = "x" } });
        var run = await fx.Host.WaitForRunAsync(created.GetProperty("runid").GetString()!, RunTimeout);

        Assert.Equal("Failed", run.GetProperty("status").GetString());
        Assert.Contains("tests are red", run.GetProperty("message").GetString(), StringComparison.Ordinal);
        var statuses = run.GetProperty("steps").EnumerateArray().Select(s => s.GetProperty("status").GetString()).ToList();
        Assert.Equal(["Succeeded", "Failed", "Skipped"], statuses);
        Assert.Empty(dc.Received);
        var failed = run.GetProperty("steps")[1].GetProperty("attempts")[0];
        Assert.False(failed.GetProperty("success").GetBoolean());
        Assert.Equal("tests are red", failed.GetProperty("message").GetString());
    }

    [Fact]
    public async Task Step_waits_for_its_driver_instead_of_being_dropped_by_the_interest_stream()
    {
        var type = EngineFixture.Unique("app");
        var late = EngineFixture.Unique("late");
        await fx.CreateDefinitionAsync(type);
        await fx.Host.PostJsonAsync("/pipelines", new { name = type, resource = type, steps = new[] { new { id = "only", name = "late", driver = late } } });
        var created = await fx.Host.PostJsonAsync("/resources", new { name = "web", resource = type, pipeline = type, spec = new { image = "x" } });
        var runId = created.GetProperty("runid").GetString()!;

        var waiting = await fx.Host.GetJsonAsync($"/runs/{runId}");
        Assert.Equal("Running", waiting.GetProperty("status").GetString());
        Assert.True(waiting.GetProperty("steps")[0].GetProperty("waitingForDriver").GetBoolean());

        // The driver appears after the dispatch was decided: the original would have lost the step for good.
        await using var driver = await RawDriver.StartAsync(fx.Nats.Url, late, $"drivers.{late}.resources.{type}");
        var run = await fx.Host.WaitForRunAsync(runId, RunTimeout);
        Assert.Equal("Succeeded", run.GetProperty("status").GetString());
        Assert.Single(driver.Received);
        Assert.False(run.GetProperty("steps")[0].GetProperty("waitingForDriver").GetBoolean());
    }

    [Fact]
    public async Task Resource_without_pipeline_is_announced_to_every_driver_of_its_type()
    {
        var type = EngineFixture.Unique("app");
        await fx.CreateDefinitionAsync(type);
        await using var one = await RawDriver.StartAsync(fx.Nats.Url, EngineFixture.Unique("one"), $"resources.{type}");
        await using var two = await RawDriver.StartAsync(fx.Nats.Url, EngineFixture.Unique("two"), $"resources.{type}");

        var created = await fx.Host.PostJsonAsync("/resources", new { name = "plain", resource = type, spec = new { image = "x" } });
        var runId = created.GetProperty("runid").GetString()!;

        await Conveyor.Testing.Eventually.TrueAsync(() => !one.Received.IsEmpty && !two.Received.IsEmpty, Deadlines.Event, "both drivers get the event");
        foreach (var driver in new[] { one, two })
        {
            var (_, subject, message) = Assert.Single(driver.Received);
            Assert.Equal($"resources.{type}", subject);
            Assert.Equal("create", message.GetProperty("event").GetString());
            Assert.Equal(runId, message.GetProperty("run_id").GetString());
            var payload = JsonDocument.Parse(message.GetProperty("payload").GetString()!).RootElement;
            Assert.Equal("plain", payload.GetProperty("name").GetString());
            Assert.Equal(type, payload.GetProperty("resource").GetString());
            Assert.False(payload.TryGetProperty("pipeline", out _));
            Assert.Equal("x", payload.GetProperty("spec").GetProperty("image").GetString());
        }
    }

    [Fact]
    public async Task Diamond_runs_both_branches_after_the_root_and_the_join_after_both()
    {
        var type = EngineFixture.Unique("app");
        var drv = EngineFixture.Unique("dag");
        await fx.CreateDefinitionAsync(type);
        await fx.Host.PostJsonAsync("/pipelines", new
        {
            name = type,
            resource = type,
            steps = new object[]
            {
                new { id = "a", driver = drv, dependsOn = Array.Empty<string>() },
                new { id = "b", driver = drv, dependsOn = new[] { "a" } },
                new { id = "c", driver = drv, dependsOn = new[] { "a" } },
                new { id = "d", driver = drv, dependsOn = new[] { "b", "c" } },
            },
        });
        await using var driver = await RawDriver.StartAsync(fx.Nats.Url, drv, $"drivers.{drv}.resources.{type}");
        var created = await fx.Host.PostJsonAsync("/resources", new { name = "web", resource = type, pipeline = type, spec = new { image = "x" } });
        var run = await fx.Host.WaitForRunAsync(created.GetProperty("runid").GetString()!, RunTimeout);

        Assert.Equal("Succeeded", run.GetProperty("status").GetString());
        Assert.Equal(4, driver.Received.Count);
        var finished = run.GetProperty("steps").EnumerateArray().ToDictionary(
            s => s.GetProperty("id").GetString()!,
            s => (Dispatched: s.GetProperty("attempts")[0].GetProperty("dispatchedAt").GetDateTimeOffset(),
                  Finished: s.GetProperty("attempts")[0].GetProperty("finishedAt").GetDateTimeOffset()));
        Assert.True(finished["b"].Dispatched >= finished["a"].Finished);
        Assert.True(finished["c"].Dispatched >= finished["a"].Finished);
        Assert.True(finished["d"].Dispatched >= finished["b"].Finished && finished["d"].Dispatched >= finished["c"].Finished);
    }

    [Fact]
    public async Task Duplicate_and_unroutable_results_are_acked_and_ignored()
    {
        var type = EngineFixture.Unique("app");
        var (first, second) = (EngineFixture.Unique("first"), EngineFixture.Unique("second"));
        await fx.CreateDefinitionAsync(type);
        await fx.Host.PostJsonAsync("/pipelines", new
        {
            name = type,
            resource = type,
            steps = new[] { new { id = "1", name = "one", driver = first }, new { id = "2", name = "two", driver = second } },
        });
        await using var d1 = await RawDriver.StartAsync(fx.Nats.Url, first, $"drivers.{first}.resources.{type}");
        var created = await fx.Host.PostJsonAsync("/resources", new { name = "web", resource = type, pipeline = type, spec = new { image = "x" } });
        var runId = created.GetProperty("runid").GetString()!;

        // Step 2's driver is not there yet, so the run parks after step 1.
        await Conveyor.Testing.Eventually.TrueAsync(
            async () => (await fx.Host.GetJsonAsync($"/runs/{runId}")).GetProperty("steps")[0].GetProperty("status").GetString() == "Succeeded",
            RunTimeout,
            "step 1 succeeds");

        await using var nats = new NATS.Client.Core.NatsConnection(NATS.Client.Core.NatsOpts.Default with { Url = fx.Nats.Url });
        var js = new NATS.Client.JetStream.NatsJSContext(nats);
        string Result(string run, string driver, bool success, string message) =>
            $$$"""{"event":"driver.result","run_id":"{{{run}}}","resource":null,"driverresult":{"success":{{{(success ? "true" : "false")}}},"message":"{{{message}}}","data":null,"driver":"{{{driver}}}"}}""";

        // A redelivered result of step 1, the original way (no step headers) and the SDK way (same step and attempt).
        await js.PublishAsync("pipelines.driver.result", System.Text.Encoding.UTF8.GetBytes(Result(runId, first, false, "duplicate")));
        var headers = new NATS.Client.Core.NatsHeaders { ["Conveyor-Step-Id"] = "1", ["Conveyor-Attempt"] = "1" };
        await js.PublishAsync("pipelines.driver.result", System.Text.Encoding.UTF8.GetBytes(Result(runId, first, false, "duplicate")), headers: headers);
        // Garbage, a result for a run that does not exist, and a run id that is not a UUID.
        await js.PublishAsync("pipelines.driver.result", "{not json"u8.ToArray());
        await js.PublishAsync("pipelines.driver.result", System.Text.Encoding.UTF8.GetBytes(Result(Guid.NewGuid().ToString(), first, true, "")));
        await js.PublishAsync("pipelines.driver.result", System.Text.Encoding.UTF8.GetBytes(Result("not-a-uuid", first, true, "")));

        // The consumer keeps going: step 2 runs once its driver appears, and step 1 still has its one result.
        await using var d2 = await RawDriver.StartAsync(fx.Nats.Url, second, $"drivers.{second}.resources.{type}");
        var run = await fx.Host.WaitForRunAsync(runId, RunTimeout);
        Assert.Equal("Succeeded", run.GetProperty("status").GetString());
        var attempt = Assert.Single(run.GetProperty("steps")[0].GetProperty("attempts").EnumerateArray());
        Assert.True(attempt.GetProperty("success").GetBoolean());
        Assert.Equal($"{first} ok", attempt.GetProperty("message").GetString());
        Assert.Single(d1.Received);
    }
}
