using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Conveyor.Driver.Sdk;
using Conveyor.Testing;

namespace Conveyor.IntegrationTests;

/// <summary>
/// The pipeline language end to end: pipelines as JSON over HTTP, SDK drivers over a real NATS, a real Redis — a
/// condition, a matrix, finally steps, an approval gate, pause and resume, and sub-pipelines.
/// </summary>
[Collection(EngineCollection.Name)]
public sealed class PipelineLanguageTests(EngineFixture fx)
{
    private async Task<(string Type, LanguageDrivers Drivers)> SetUpAsync()
    {
        var type = EngineFixture.Unique("lang");
        await fx.CreateDefinitionAsync(type);
        return (type, new LanguageDrivers(fx.Nats.Url, type));
    }

    private async Task<string> StartRunAsync(string type, string pipeline)
    {
        var created = await fx.Host.PostJsonAsync("/resources", new { name = EngineFixture.Unique("r"), resource = type, pipeline, spec = new { image = "nginx" } });
        return created.GetProperty("runid").GetString()!;
    }

    private Task<JsonElement> RunAsync(string runId) => fx.Host.GetJsonAsync($"/runs/{runId}");

    private async Task<JsonElement> WaitForAsync(string runId, Func<JsonElement, bool> condition, string because)
    {
        JsonElement run = default;
        await Eventually.TrueAsync(async () => condition(run = await RunAsync(runId)), Deadlines.Event, because);
        return run;
    }

    [Fact]
    public async Task A_false_condition_skips_its_step_and_its_dependent_runs()
    {
        var (type, drivers) = await SetUpAsync();
        await using var _ = drivers;
        var (build, deploy, notify) = (EngineFixture.Unique("build"), EngineFixture.Unique("deploy"), EngineFixture.Unique("notify"));
        foreach (var d in new[] { build, deploy, notify })
        {
            await drivers.StartAsync(d);
        }

        await fx.Host.PostJsonAsync("/pipelines", new
        {
            name = type,
            resource = type,
            steps = new object[]
            {
                new { id = "build", driver = build },
                new { id = "deploy", driver = deploy, dependsOn = new[] { "build" }, when = "inputs.build.driver == 'someone-else' && resource.spec.image == 'nginx'" },
                new { id = "notify", driver = notify, dependsOn = new[] { "deploy" } },
            },
        });

        var run = await fx.Host.WaitForRunAsync(await StartRunAsync(type, type), Deadlines.Event);

        Assert.Equal("Succeeded", run.GetProperty("status").GetString());
        var skipped = run.Step("deploy");
        Assert.Equal("Skipped", skipped.GetProperty("status").GetString());
        Assert.Equal("condition", skipped.GetProperty("skipReason").GetString());
        Assert.Contains("is false", skipped.GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.Empty(skipped.GetProperty("attempts").EnumerateArray());
        Assert.Equal("Succeeded", run.Status("notify"));
        Assert.Single(drivers.Of(notify));
    }

    [Fact]
    public async Task A_two_by_two_matrix_dispatches_four_instances_and_the_fan_in_receives_four_outputs()
    {
        var (type, drivers) = await SetUpAsync();
        await using var _ = drivers;
        var (test, fanIn) = (EngineFixture.Unique("test"), EngineFixture.Unique("fanin"));
        await drivers.StartAsync(test, e => Task.FromResult(DriverResult.Ok("tested", new { combination = e.Params!.Value.GetProperty("matrix") })));
        await drivers.StartAsync(fanIn);
        await fx.Host.PostJsonAsync("/pipelines", new
        {
            name = type,
            resource = type,
            steps = new object[]
            {
                new { id = "test", driver = test, matrix = new { axes = new { os = new[] { "linux", "windows" }, arch = new[] { "x64", "arm64" } }, maxParallel = 2 } },
                new { id = "fanin", driver = fanIn, dependsOn = new[] { "test" } },
            },
        });

        var run = await fx.Host.WaitForRunAsync(await StartRunAsync(type, type), Deadlines.Event);

        Assert.Equal("Succeeded", run.GetProperty("status").GetString());
        var events = drivers.Of(test);
        Assert.Equal(4, events.Count);
        Assert.Equal(["test[0]", "test[1]", "test[2]", "test[3]"], events.Select(e => e.StepId).Order());
        var expected = new[] { """{"os":"linux","arch":"x64"}""", """{"os":"linux","arch":"arm64"}""", """{"os":"windows","arch":"x64"}""", """{"os":"windows","arch":"arm64"}""" };
        Assert.Equal(expected, events.OrderBy(e => e.StepId).Select(e => e.Params!.Value.GetProperty("matrix").GetRawText()));

        var instances = run.Step("test").GetProperty("instances").EnumerateArray().ToList();
        Assert.Equal(4, instances.Count);
        Assert.All(instances, i => Assert.Equal("Succeeded", i.GetProperty("status").GetString()));
        Assert.Equal(expected, instances.Select(i => i.GetProperty("matrix").GetRawText()));

        var fanInEvent = Assert.Single(drivers.Of(fanIn));
        var outputs = fanInEvent.Inputs["test"].EnumerateArray().Select(o => o.GetProperty("combination").GetRawText()).ToList();
        Assert.Equal(expected, outputs);
    }

    [Fact]
    public async Task A_finally_step_runs_after_a_failure_and_the_run_still_fails()
    {
        var (type, drivers) = await SetUpAsync();
        await using var _ = drivers;
        var (build, deploy, cleanup) = (EngineFixture.Unique("build"), EngineFixture.Unique("deploy"), EngineFixture.Unique("cleanup"));
        await drivers.StartAsync(build, _ => Task.FromResult(DriverResult.Fail("compiler exploded")));
        await drivers.StartAsync(deploy);
        await drivers.StartAsync(cleanup);
        await fx.Host.PostJsonAsync("/pipelines", new
        {
            name = type,
            resource = type,
            steps = new object[] { new { id = "build", driver = build }, new { id = "deploy", driver = deploy } },
            @finally = new object[] { new { id = "cleanup", driver = cleanup, when = "run.status == 'Failed' && steps.build.status == 'Failed'" } },
        });

        var run = await fx.Host.WaitForRunAsync(await StartRunAsync(type, type), Deadlines.Event);

        Assert.Equal("Failed", run.GetProperty("status").GetString());
        Assert.Equal("step build failed: compiler exploded", run.GetProperty("message").GetString());
        Assert.Equal("Skipped", run.Status("deploy"));
        Assert.Equal("Succeeded", run.Status("cleanup"));
        Assert.True(run.Step("cleanup").GetProperty("finally").GetBoolean());
        Assert.Single(drivers.Of(cleanup));
        var pipeline = await fx.Host.GetJsonAsync($"/pipelines/{type}");
        Assert.Equal("cleanup", Assert.Single(pipeline.GetProperty("finally").EnumerateArray()).GetProperty("id").GetString());
    }

    [Fact]
    public async Task An_approval_gate_holds_the_run_until_approved_and_a_rejection_fails_it()
    {
        var (type, drivers) = await SetUpAsync();
        await using var _ = drivers;
        var (build, deploy) = (EngineFixture.Unique("build"), EngineFixture.Unique("deploy"));
        await drivers.StartAsync(build);
        await drivers.StartAsync(deploy);
        await fx.Host.PostJsonAsync("/pipelines", new
        {
            name = type,
            resource = type,
            steps = new object[]
            {
                new { id = "build", driver = build },
                new { id = "prod-gate", type = "approval", approvers = "operator", timeout = "1.00:00:00" },
                new { id = "deploy", driver = deploy },
            },
        });

        var approved = await StartRunAsync(type, type);
        var waiting = await WaitForAsync(approved, r => r.Status("prod-gate") == "WaitingForApproval", "the gate should wait for approval");
        // The gate holds: its dependent is pending and was never dispatched (the gate decides when it is).
        Assert.Equal("Running", waiting.GetProperty("status").GetString());
        Assert.Equal("Pending", waiting.Status("deploy"));
        Assert.Empty(waiting.Step("deploy").GetProperty("attempts").EnumerateArray());

        var decided = await fx.Host.PostJsonAsync($"/runs/{approved}/steps/prod-gate/approve", new { comment = "ship it" }, expectedStatus: 200);
        Assert.Equal("Succeeded", decided.Status("prod-gate"));
        var run = await fx.Host.WaitForRunAsync(approved, Deadlines.Event);
        Assert.Equal("Succeeded", run.GetProperty("status").GetString());
        var approval = run.Step("prod-gate").GetProperty("approval");
        Assert.True(approval.GetProperty("approved").GetBoolean());
        Assert.Equal("ship it", approval.GetProperty("comment").GetString());
        Assert.True(approval.GetProperty("at").GetDateTimeOffset() > DateTimeOffset.UnixEpoch);
        Assert.Equal(JsonValueKind.Null, approval.GetProperty("by").ValueKind); // authentication is off here (SecurityFixture tests the key)
        Assert.Equal("approval", run.Step("prod-gate").GetProperty("type").GetString());

        // Deciding again is a conflict.
        using var again = await fx.Host.Http.PostAsJsonAsync($"/runs/{approved}/steps/prod-gate/reject", new { });
        Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);

        var rejected = await StartRunAsync(type, type);
        await WaitForAsync(rejected, r => r.Status("prod-gate") == "WaitingForApproval", "the gate should wait for approval");
        await fx.Host.PostJsonAsync($"/runs/{rejected}/steps/prod-gate/reject", new { comment = "freeze" }, expectedStatus: 200);
        var failed = await fx.Host.WaitForRunAsync(rejected, Deadlines.Event);
        Assert.Equal("Failed", failed.GetProperty("status").GetString());
        Assert.Equal("Skipped", failed.Status("deploy"));
        Assert.False(failed.Step("prod-gate").GetProperty("approval").GetProperty("approved").GetBoolean());
        Assert.Single(drivers.Of(deploy));
    }

    [Fact]
    public async Task A_paused_run_dispatches_nothing_new_and_finishes_once_resumed()
    {
        var (type, drivers) = await SetUpAsync();
        await using var _ = drivers;
        var (first, second) = (EngineFixture.Unique("first"), EngineFixture.Unique("second"));
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await drivers.StartAsync(first, async _ =>
        {
            await release.Task;
            return DriverResult.Ok("first ok");
        });
        await drivers.StartAsync(second);
        await fx.Host.PostJsonAsync("/pipelines", new
        {
            name = type,
            resource = type,
            steps = new object[] { new { id = "a", driver = first }, new { id = "b", driver = second } },
        });

        var runId = await StartRunAsync(type, type);
        await drivers.WaitForAsync(first, 1);
        var paused = await fx.Host.PostJsonAsync($"/runs/{runId}/pause", new { }, expectedStatus: 200);
        Assert.Equal("Paused", paused.GetProperty("status").GetString());
        using (var twice = await fx.Host.Http.PostAsJsonAsync($"/runs/{runId}/pause", new { }))
        {
            Assert.Equal(HttpStatusCode.Conflict, twice.StatusCode);
        }

        // The step in flight finishes and is recorded; the transition that records it dispatches nothing.
        release.SetResult();
        var held = await WaitForAsync(runId, r => r.Status("a") == "Succeeded", "the in-flight step should be recorded while paused");
        Assert.Equal("Paused", held.GetProperty("status").GetString());
        Assert.Equal("Pending", held.Status("b"));
        Assert.Empty(held.Step("b").GetProperty("attempts").EnumerateArray());

        var resumed = await fx.Host.PostJsonAsync($"/runs/{runId}/resume", new { }, expectedStatus: 200);
        Assert.Equal("Running", resumed.GetProperty("status").GetString());
        var run = await fx.Host.WaitForRunAsync(runId, Deadlines.Event);
        Assert.Equal("Succeeded", run.GetProperty("status").GetString());
        Assert.Single(drivers.Of(second));
    }

    [Fact]
    public async Task A_sub_pipelines_failure_fails_its_parent_step_and_parent_and_child_link_to_each_other()
    {
        var (type, drivers) = await SetUpAsync();
        await using var _ = drivers;
        var (build, migrate, after) = (EngineFixture.Unique("build"), EngineFixture.Unique("migrate"), EngineFixture.Unique("after"));
        await drivers.StartAsync(build);
        await drivers.StartAsync(migrate, e => Task.FromResult(e.Params?.GetProperty("region").GetString() == "eu" ? DriverResult.Fail("migration failed") : DriverResult.Ok("migrated")));
        await drivers.StartAsync(after);
        var child = type + "-child";
        await fx.Host.PostJsonAsync("/pipelines", new { name = child, resource = type, steps = new object[] { new { id = "migrate", driver = migrate } } });
        await fx.Host.PostJsonAsync("/pipelines", new
        {
            name = type,
            resource = type,
            steps = new object[]
            {
                new { id = "build", driver = build },
                new { id = "deploy", pipeline = child, @params = new { region = "eu" } },
                new { id = "after", driver = after },
            },
        });

        var runId = await StartRunAsync(type, type);
        var run = await fx.Host.WaitForRunAsync(runId, Deadlines.Event);

        Assert.Equal("Failed", run.GetProperty("status").GetString());
        var deploy = run.Step("deploy");
        Assert.Equal("Failed", deploy.GetProperty("status").GetString());
        Assert.Equal("pipeline", deploy.GetProperty("type").GetString());
        Assert.Equal("Skipped", run.Status("after"));
        var childId = deploy.GetProperty("childRunId").GetGuid();
        Assert.Contains($"child run {childId} Failed", deploy.GetProperty("message").GetString(), StringComparison.Ordinal);

        var childRun = await RunAsync(childId.ToString());
        Assert.Equal("Failed", childRun.GetProperty("status").GetString());
        Assert.Equal(child, childRun.GetProperty("pipeline").GetString());
        Assert.Equal(runId, childRun.GetProperty("parent").GetProperty("runId").GetString());
        Assert.Equal("deploy", childRun.GetProperty("parent").GetProperty("step").GetString());
        Assert.Equal($"parent:{runId}", childRun.GetProperty("trigger").GetString());
        Assert.Empty(drivers.Of(after));
    }

    [Fact]
    public async Task A_sub_pipelines_success_passes_its_outputs_on_and_cancelling_the_parent_cancels_the_child()
    {
        var (type, drivers) = await SetUpAsync();
        await using var _ = drivers;
        var (work, hold, after) = (EngineFixture.Unique("work"), EngineFixture.Unique("hold"), EngineFixture.Unique("after"));
        await drivers.StartAsync(work, _ => Task.FromResult(DriverResult.Ok("worked", new { url = "https://example.test" })));
        await drivers.StartAsync(hold, async (_, cancelled) =>
        {
            // Held until the engine cancels it (the parent's cancel reaches its child's driver).
            await Task.Delay(Timeout.Infinite, cancelled);
            return DriverResult.Ok();
        });
        await drivers.StartAsync(after);
        var (quick, slow) = (type + "-quick", type + "-slow");
        await fx.Host.PostJsonAsync("/pipelines", new { name = quick, resource = type, steps = new object[] { new { id = "release", driver = work } } });
        await fx.Host.PostJsonAsync("/pipelines", new { name = slow, resource = type, steps = new object[] { new { id = "wait", driver = hold } } });
        await fx.Host.PostJsonAsync("/pipelines", new
        {
            name = type,
            resource = type,
            steps = new object[] { new { id = "deploy", pipeline = quick }, new { id = "after", driver = after } },
        });
        var parent2 = type + "-p2";
        await fx.Host.PostJsonAsync("/pipelines", new { name = parent2, resource = type, steps = new object[] { new { id = "deploy", pipeline = slow } } });

        var run = await fx.Host.WaitForRunAsync(await StartRunAsync(type, type), Deadlines.Event);
        Assert.Equal("Succeeded", run.GetProperty("status").GetString());
        var input = Assert.Single(drivers.Of(after)).Inputs["deploy"];
        Assert.Equal("https://example.test", input.GetProperty("release").GetProperty("url").GetString());

        var cancelled = await StartRunAsync(type, parent2);
        await drivers.WaitForAsync(hold, 1);
        var running = await RunAsync(cancelled);
        var childId = running.Step("deploy").GetProperty("childRunId").GetString()!;
        await fx.Host.PostJsonAsync($"/runs/{cancelled}/cancel", new { reason = "stop" }, expectedStatus: 200);
        var childRun = await fx.Host.WaitForRunAsync(childId, Deadlines.Event);
        Assert.Equal("Cancelled", childRun.GetProperty("status").GetString());
        Assert.Contains($"parent run {cancelled} stopped", childRun.GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_pipeline_with_a_bad_condition_or_matrix_is_refused_naming_the_step()
    {
        var type = EngineFixture.Unique("lang");
        await fx.CreateDefinitionAsync(type);
        using var bad = await fx.Host.Http.PostAsJsonAsync("/pipelines", new
        {
            name = type,
            resource = type,
            steps = new object[]
            {
                new { id = "build", driver = "d", when = "params.env ==" },
                new { id = "test", driver = "t", matrix = new { fromInput = "nowhere.list" } },
                new { id = "gate", type = "approval", approvers = "everyone" },
                new { id = "sub", pipeline = "does-not-exist" },
            },
        });
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        var problem = await bad.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("urn:conveyor:problem:validation", problem.GetProperty("type").GetString());
        var errors = problem.GetProperty("errors");
        Assert.Contains("step 'build': invalid condition: syntax error", errors.GetProperty("steps[0].when")[0].GetString(), StringComparison.Ordinal);
        Assert.Contains("'nowhere' is not a dependency of step 'test'", errors.GetProperty("steps[1].matrix.fromInput")[0].GetString(), StringComparison.Ordinal);
        Assert.Contains("must be 'operator' or 'admin'", errors.GetProperty("steps[2].approvers")[0].GetString(), StringComparison.Ordinal);
        // Nothing was stored.
        using var missing = await fx.Host.Http.GetAsync($"/pipelines/{type}");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);

        using var unknownChild = await fx.Host.Http.PostAsJsonAsync("/pipelines", new { name = type, resource = type, steps = new object[] { new { id = "sub", pipeline = "does-not-exist" } } });
        Assert.Equal(HttpStatusCode.BadRequest, unknownChild.StatusCode);
        var childProblem = await unknownChild.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Contains("pipeline does-not-exist not found", childProblem.GetProperty("errors").GetProperty("steps[0].pipeline")[0].GetString(), StringComparison.Ordinal);
    }
}
