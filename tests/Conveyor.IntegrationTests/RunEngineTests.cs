using System.Net.Http.Json;
using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Conveyor.Testing;

namespace Conveyor.IntegrationTests;

/// <summary>The DAG run engine against real NATS and Redis: retries, timeouts, failure policies, cancel, retry, listing, graphs.</summary>
[Collection(EngineCollection.Name)]
public sealed class RunEngineTests(EngineFixture fx)
{
    private static readonly TimeSpan RunTimeout = Deadlines.Event;

    /// <summary>
    /// Longest a due time may be late: far beyond any scheduling delay of a busy machine, well short of the 1 min
    /// keep-alive reminder that would also end a wait whose own timer never fired.
    /// </summary>
    private static readonly TimeSpan TimerCeiling = TimeSpan.FromSeconds(30);

    private sealed record Setup(string Type, string Driver, RawDriver Raw) : IAsyncDisposable
    {
        public ValueTask DisposeAsync() => Raw.DisposeAsync();
    }

    /// <summary>Defines a type and a pipeline whose steps all use one driver, and starts that driver.</summary>
    private async Task<Setup> SetupAsync(object[] steps, Func<JsonElement, Task<(bool, string, JsonNode?)?>> reconcile, object? extra = null)
    {
        var type = EngineFixture.Unique("eng");
        var driver = EngineFixture.Unique("drv");
        await fx.CreateDefinitionAsync(type);
        var pipeline = JsonSerializer.SerializeToNode(new { name = type, resource = type, steps })!.AsObject();
        foreach (var (key, value) in extra is null ? [] : JsonSerializer.SerializeToNode(extra)!.AsObject().ToList())
        {
            pipeline[key] = value?.DeepClone();
        }

        var json = pipeline.ToJsonString().Replace("\"DRIVER\"", $"\"{driver}\"", StringComparison.Ordinal);
        await fx.Host.PostJsonAsync("/pipelines", JsonNode.Parse(json)!);
        var raw = await RawDriver.StartAsync(fx.Nats.Url, driver, $"drivers.{driver}.resources.{type}", reconcile);
        return new Setup(type, driver, raw);
    }

    private async Task<string> TriggerAsync(string type, string name = "web") =>
        (await fx.Host.PostJsonAsync("/resources", new { name, resource = type, pipeline = type, spec = new { image = "x" } })).GetProperty("runid").GetString()!;

    private static string Step(JsonElement message) => message.GetProperty("step").GetString()!;

    private static int Attempt(JsonElement message) => message.GetProperty("attempt").GetInt32();

    private static Task<(bool, string, JsonNode?)?> Answer(bool success, string message, JsonNode? data = null) =>
        Task.FromResult<(bool, string, JsonNode?)?>((success, message, data));

    private static readonly Task<(bool, string, JsonNode?)?> Silence = Task.FromResult<(bool, string, JsonNode?)?>(null);

    private static JsonElement StepOf(JsonElement run, string id) => run.GetProperty("steps").EnumerateArray().Single(s => s.GetProperty("id").GetString() == id);

    [Fact]
    public async Task Failed_step_is_retried_with_exponential_backoff_and_succeeds_on_attempt_3()
    {
        await using var s = await SetupAsync(
            [new { id = "flaky", driver = "DRIVER", retry = new { maxAttempts = 3, initialDelay = "400ms", multiplier = 2.0, jitter = 0.0 } }],
            m => Attempt(m) < 3 ? Answer(false, $"boom {Attempt(m)}") : Answer(true, "third time lucky"));
        var run = await fx.Host.WaitForRunAsync(await TriggerAsync(s.Type), RunTimeout);

        Assert.Equal("Succeeded", run.GetProperty("status").GetString());
        var attempts = StepOf(run, "flaky").GetProperty("attempts").EnumerateArray().ToList();
        Assert.Equal(3, attempts.Count);
        Assert.Equal(["boom 1", "boom 2", "third time lucky"], attempts.Select(a => a.GetProperty("message").GetString()));
        var firstDelay = attempts[1].GetProperty("dispatchedAt").GetDateTimeOffset() - attempts[0].GetProperty("finishedAt").GetDateTimeOffset();
        var secondDelay = attempts[2].GetProperty("dispatchedAt").GetDateTimeOffset() - attempts[1].GetProperty("finishedAt").GetDateTimeOffset();
        // Timers never fire early, so the lower bounds are exact; a loaded machine can only make a delay longer. The
        // second wait's floor, twice the first's nominal 400 ms, is what shows the backoff grows. The upper bound only
        // tells the step's own timer from the run's keep-alive reminder (1 min), which would also resume it.
        Assert.InRange(firstDelay.TotalMilliseconds, 380, TimerCeiling.TotalMilliseconds);
        Assert.InRange(secondDelay.TotalMilliseconds, 780, TimerCeiling.TotalMilliseconds);
        Assert.Equal([1, 2, 3], s.Raw.Received.Select(r => Attempt(r.Message)));
    }

    [Fact]
    public async Task Step_that_exhausts_its_attempts_fails_the_run()
    {
        await using var s = await SetupAsync(
            [new { id = "bad", driver = "DRIVER", retry = new { maxAttempts = 2, initialDelay = "100ms", jitter = 0.0 } }, new { id = "after", driver = "DRIVER" }],
            m => Answer(false, "always broken"));
        var run = await fx.Host.WaitForRunAsync(await TriggerAsync(s.Type), RunTimeout);

        Assert.Equal("Failed", run.GetProperty("status").GetString());
        Assert.Equal("Failed", StepOf(run, "bad").GetProperty("status").GetString());
        Assert.Equal(2, StepOf(run, "bad").GetProperty("attempts").GetArrayLength());
        Assert.Equal("Skipped", StepOf(run, "after").GetProperty("status").GetString());
        Assert.Equal(2, s.Raw.Received.Count);
    }

    [Fact]
    public async Task Attempt_timeout_counts_as_a_failure_cancels_the_attempt_and_the_retry_succeeds()
    {
        await using var s = await SetupAsync(
            [new { id = "slow", driver = "DRIVER", timeout = "700ms", retry = new { maxAttempts = 2, initialDelay = "100ms", jitter = 0.0 } }],
            m => Attempt(m) == 1 ? Silence : Answer(true, "fast enough"));
        var run = await fx.Host.WaitForRunAsync(await TriggerAsync(s.Type), RunTimeout);

        Assert.Equal("Succeeded", run.GetProperty("status").GetString());
        var attempts = StepOf(run, "slow").GetProperty("attempts").EnumerateArray().ToList();
        Assert.True(attempts[0].GetProperty("timedOut").GetBoolean());
        Assert.False(attempts[0].GetProperty("success").GetBoolean());
        var waited = attempts[0].GetProperty("finishedAt").GetDateTimeOffset() - attempts[0].GetProperty("dispatchedAt").GetDateTimeOffset();
        Assert.InRange(waited.TotalMilliseconds, 680, TimerCeiling.TotalMilliseconds);
        Assert.True(attempts[1].GetProperty("success").GetBoolean());
        await Eventually.TrueAsync(() => !s.Raw.Cancels.IsEmpty, Deadlines.Event, "the timed-out attempt is cancelled");
        var cancel = Assert.Single(s.Raw.Cancels);
        Assert.Equal("slow", cancel.GetProperty("step").GetString());
        Assert.Equal(1, cancel.GetProperty("attempt").GetInt32());
    }

    [Fact]
    public async Task Run_timeout_ends_the_run_timed_out_and_cancels_in_flight_steps()
    {
        await using var s = await SetupAsync([new { id = "forever", driver = "DRIVER" }, new { id = "never", driver = "DRIVER" }], _ => Silence, new { timeout = "1s" });
        var run = await fx.Host.WaitForRunAsync(await TriggerAsync(s.Type), RunTimeout);

        Assert.Equal("TimedOut", run.GetProperty("status").GetString());
        Assert.Contains("timed out", run.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal("Cancelled", StepOf(run, "forever").GetProperty("status").GetString());
        Assert.Equal("Skipped", StepOf(run, "never").GetProperty("status").GetString());
        var elapsed = run.GetProperty("finishedAt").GetDateTimeOffset() - run.GetProperty("startedAt").GetDateTimeOffset();
        Assert.InRange(elapsed.TotalMilliseconds, 980, TimerCeiling.TotalMilliseconds);
        await Eventually.TrueAsync(() => s.Raw.Cancels.Count == 1, Deadlines.Event, "the driver is told to stop");
    }

    [Fact]
    public async Task Fail_fast_cancels_in_flight_siblings_and_their_drivers_are_told()
    {
        await using var s = await SetupAsync(
            [
                new { id = "root", driver = "DRIVER", dependsOn = Array.Empty<string>() },
                new { id = "breaks", driver = "DRIVER", dependsOn = new[] { "root" } },
                new { id = "hangs", driver = "DRIVER", dependsOn = new[] { "root" } },
                new { id = "join", driver = "DRIVER", dependsOn = new[] { "breaks", "hangs" } },
            ],
            m => Step(m) switch { "root" => Answer(true, "ok"), "breaks" => Answer(false, "kaput"), _ => Silence });
        var run = await fx.Host.WaitForRunAsync(await TriggerAsync(s.Type), RunTimeout);

        Assert.Equal("Failed", run.GetProperty("status").GetString());
        Assert.Equal("step breaks failed: kaput", run.GetProperty("message").GetString());
        Assert.Equal("Cancelled", StepOf(run, "hangs").GetProperty("status").GetString());
        Assert.Equal("Skipped", StepOf(run, "join").GetProperty("status").GetString());
        await Eventually.TrueAsync(() => s.Raw.Cancels.Any(c => c.GetProperty("step").GetString() == "hangs"), Deadlines.Event, "hangs is cancelled");
    }

    [Fact]
    public async Task Continue_policy_runs_every_step_whose_dependencies_succeeded()
    {
        await using var s = await SetupAsync(
            [
                new { id = "a", driver = "DRIVER", dependsOn = Array.Empty<string>() },
                new { id = "b", driver = "DRIVER", dependsOn = new[] { "a" } },
                new { id = "b2", driver = "DRIVER", dependsOn = new[] { "b" } },
                new { id = "c", driver = "DRIVER", dependsOn = new[] { "a" } },
                new { id = "d", driver = "DRIVER", dependsOn = new[] { "c" } },
            ],
            m => Step(m) == "b" ? Answer(false, "b broke") : Answer(true, "ok"),
            new { failurePolicy = "continue" });
        var run = await fx.Host.WaitForRunAsync(await TriggerAsync(s.Type), RunTimeout);

        Assert.Equal("Failed", run.GetProperty("status").GetString());
        Assert.Equal(
            ["Succeeded", "Failed", "Skipped", "Succeeded", "Succeeded"],
            run.GetProperty("steps").EnumerateArray().Select(x => x.GetProperty("status").GetString()));
    }

    [Fact]
    public async Task Allowed_failure_lets_dependents_run_and_the_run_succeed()
    {
        await using var s = await SetupAsync(
            [new { id = "lint", driver = "DRIVER", allowFailure = true }, new { id = "ship", driver = "DRIVER" }],
            m => Step(m) == "lint" ? Answer(false, "style nits") : Answer(true, "shipped"));
        var run = await fx.Host.WaitForRunAsync(await TriggerAsync(s.Type), RunTimeout);

        Assert.Equal("Succeeded", run.GetProperty("status").GetString());
        Assert.Equal("Failed", StepOf(run, "lint").GetProperty("status").GetString());
        Assert.Equal("Succeeded", StepOf(run, "ship").GetProperty("status").GetString());
    }

    [Fact]
    public async Task Cancel_mid_run_stops_everything_and_the_driver_sees_it()
    {
        await using var s = await SetupAsync([new { id = "1", driver = "DRIVER" }, new { id = "2", driver = "DRIVER" }], _ => Silence);
        var runId = await TriggerAsync(s.Type);
        await Eventually.TrueAsync(() => s.Raw.Received.Count == 1, Deadlines.Event, "step 1 is dispatched");

        var cancelled = await fx.Host.PostJsonAsync($"/runs/{runId}/cancel", new { reason = "user pressed stop" }, 200);
        Assert.Equal("Cancelled", cancelled.GetProperty("status").GetString());
        Assert.Equal("user pressed stop", cancelled.GetProperty("message").GetString());
        Assert.Equal(["Cancelled", "Skipped"], cancelled.GetProperty("steps").EnumerateArray().Select(x => x.GetProperty("status").GetString()));
        await Eventually.TrueAsync(() => s.Raw.Cancels.Count == 1, Deadlines.Event, "the driver is told");
        Assert.Equal("user pressed stop", s.Raw.Cancels.Single().GetProperty("reason").GetString());

        using var again = await fx.Host.Http.PostAsync($"/runs/{runId}/cancel", null);
        Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
        using var missing = await fx.Host.Http.PostAsync($"/runs/{Guid.NewGuid()}/cancel", null);
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }

    [Fact]
    public async Task Retry_from_failure_reruns_only_the_steps_that_did_not_succeed()
    {
        var failures = new ConcurrentDictionary<string, int>();
        await using var s = await SetupAsync(
            [new { id = "build", driver = "DRIVER" }, new { id = "test", driver = "DRIVER" }, new { id = "deploy", driver = "DRIVER" }],
            m => Step(m) == "test" && failures.AddOrUpdate("test", 1, (_, n) => n + 1) == 1
                ? Answer(false, "flaky test")
                : Answer(true, "ok", new JsonObject { ["from"] = Step(m) }));
        var runId = await TriggerAsync(s.Type);
        var failed = await fx.Host.WaitForRunAsync(runId, RunTimeout);
        Assert.Equal("Failed", failed.GetProperty("status").GetString());

        using var notRetryable = await fx.Host.Http.PostAsync($"/runs/{Guid.NewGuid()}/retry", null);
        Assert.Equal(HttpStatusCode.NotFound, notRetryable.StatusCode);
        var retried = await fx.Host.PostJsonAsync($"/runs/{runId}/retry", new { }, 200);
        Assert.Equal(2, retried.GetProperty("runAttempt").GetInt32());
        var run = await fx.Host.WaitForRunAsync(runId, RunTimeout);

        Assert.Equal("Succeeded", run.GetProperty("status").GetString());
        Assert.Equal([1, 2, 1], run.GetProperty("steps").EnumerateArray().Select(x => x.GetProperty("attempts").GetArrayLength()));
        Assert.Equal(["build", "test", "test", "deploy"], s.Raw.Received.Select(r => Step(r.Message)));
        // The succeeded step's output was kept and handed on.
        var deploy = s.Raw.Received.Last().Message;
        Assert.Equal("test", deploy.GetProperty("inputs").GetProperty("test").GetProperty("from").GetString());

        using var succeededRetry = await fx.Host.Http.PostAsync($"/runs/{runId}/retry", null);
        Assert.Equal(HttpStatusCode.Conflict, succeededRetry.StatusCode);
    }

    [Fact]
    public async Task Driver_receives_its_params_and_the_outputs_of_its_dependencies()
    {
        await using var s = await SetupAsync(
            [
                new { id = "a", driver = "DRIVER", dependsOn = Array.Empty<string>(), @params = (object?)null },
                new { id = "b", driver = "DRIVER", dependsOn = Array.Empty<string>(), @params = (object?)null },
                new { id = "c", driver = "DRIVER", dependsOn = new[] { "a", "b" }, @params = (object?)new { target = "prod", replicas = 3 } },
            ],
            m => Answer(true, "ok", new JsonObject { ["artifact"] = Step(m) + ".tar" }));
        await fx.Host.WaitForRunAsync(await TriggerAsync(s.Type), RunTimeout);

        var c = s.Raw.Received.Single(r => Step(r.Message) == "c").Message;
        Assert.Equal("prod", c.GetProperty("params").GetProperty("target").GetString());
        Assert.Equal(3, c.GetProperty("params").GetProperty("replicas").GetInt32());
        Assert.Equal("a.tar", c.GetProperty("inputs").GetProperty("a").GetProperty("artifact").GetString());
        Assert.Equal("b.tar", c.GetProperty("inputs").GetProperty("b").GetProperty("artifact").GetString());
        var a = s.Raw.Received.Single(r => Step(r.Message) == "a").Message;
        Assert.False(a.TryGetProperty("inputs", out _));
        Assert.False(a.TryGetProperty("params", out _));
    }

    [Fact]
    public async Task Wide_fan_out_and_fan_in_of_a_hundred_steps_completes()
    {
        var steps = new List<object> { new { id = "start", driver = "DRIVER", dependsOn = Array.Empty<string>() } };
        steps.AddRange(Enumerable.Range(0, 100).Select(i => new { id = $"w{i}", driver = "DRIVER", dependsOn = new[] { "start" } }));
        steps.Add(new { id = "end", driver = "DRIVER", dependsOn = Enumerable.Range(0, 100).Select(i => $"w{i}").ToArray() });
        await using var s = await SetupAsync([.. steps], m => Answer(true, "ok", new JsonObject { ["from"] = Step(m) }));
        var run = await fx.Host.WaitForRunAsync(await TriggerAsync(s.Type), RunTimeout);

        Assert.Equal("Succeeded", run.GetProperty("status").GetString());
        Assert.Equal(102, s.Raw.Received.Count);
        Assert.Equal(102, s.Raw.Received.Select(r => Step(r.Message)).Distinct().Count());
        Assert.Equal("end", Step(s.Raw.Received.Last().Message));
        var inputs = s.Raw.Received.Last().Message.GetProperty("inputs");
        Assert.Equal(100, inputs.EnumerateObject().Count());
        // An original driver's results name no step: each must still land on the step whose message it answered.
        Assert.All(inputs.EnumerateObject(), i => Assert.Equal(i.Name, i.Value.GetProperty("from").GetString()));
    }

    [Fact]
    public async Task Steps_declared_after_their_dependents_run_in_dependency_order_and_a_failure_skips_them_all()
    {
        // Declared backwards: each step depends on the one declared after it. Scheduling walks the DAG in dependency
        // order, so one failure skips the whole chain above it in the same transition, whatever the declaration order.
        await using var s = await SetupAsync(
            [
                new { id = "d", driver = "DRIVER", dependsOn = new[] { "c" } },
                new { id = "c", driver = "DRIVER", dependsOn = new[] { "b" } },
                new { id = "b", driver = "DRIVER", dependsOn = new[] { "a" } },
                new { id = "a", driver = "DRIVER", dependsOn = Array.Empty<string>() },
            ],
            m => Step(m) == "b" ? Answer(false, "b broke") : Answer(true, "ok"));
        var run = await fx.Host.WaitForRunAsync(await TriggerAsync(s.Type), RunTimeout);

        Assert.Equal("Failed", run.GetProperty("status").GetString());
        Assert.Equal(["a", "b"], s.Raw.Received.Select(r => Step(r.Message)));
        Assert.Equal("Succeeded", StepOf(run, "a").GetProperty("status").GetString());
        Assert.Equal("Failed", StepOf(run, "b").GetProperty("status").GetString());
        Assert.Equal("Skipped", StepOf(run, "c").GetProperty("status").GetString());
        Assert.Equal("Skipped", StepOf(run, "d").GetProperty("status").GetString());
    }

    [Fact]
    public async Task Chain_of_a_hundred_steps_runs_in_order()
    {
        var steps = Enumerable.Range(0, 100).Select(i => (object)new { id = $"c{i}", driver = "DRIVER" }).ToArray();
        await using var s = await SetupAsync(steps, _ => Answer(true, "ok"));
        var run = await fx.Host.WaitForRunAsync(await TriggerAsync(s.Type), RunTimeout);

        Assert.Equal("Succeeded", run.GetProperty("status").GetString());
        Assert.Equal(Enumerable.Range(0, 100).Select(i => $"c{i}"), s.Raw.Received.Select(r => Step(r.Message)));
    }

    [Fact]
    public async Task Runs_are_listed_newest_first_by_pipeline_and_status_with_a_cursor()
    {
        await using var s = await SetupAsync([new { id = "1", driver = "DRIVER" }], m => Answer(true, "ok"));
        var ids = new List<string>();
        foreach (var name in new[] { "r1", "r2", "r3" })
        {
            ids.Add(await TriggerAsync(s.Type, name));
            await fx.Host.WaitForRunAsync(ids[^1], RunTimeout);
        }

        var first = await fx.Host.GetJsonAsync($"/runs?pipeline={s.Type}&limit=2");
        Assert.Equal([ids[2], ids[1]], first.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("id").GetString()));
        var cursor = first.GetProperty("nextCursor").GetString();
        var second = await fx.Host.GetJsonAsync($"/runs?pipeline={s.Type}&limit=2&cursor={Uri.EscapeDataString(cursor!)}");
        Assert.Equal([ids[0]], second.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("id").GetString()));
        Assert.Equal(JsonValueKind.Null, second.GetProperty("nextCursor").ValueKind);

        var succeeded = await fx.Host.GetJsonAsync($"/pipelines/{s.Type}/runs?status=succeeded");
        Assert.Equal(3, succeeded.GetProperty("items").GetArrayLength());
        var failed = await fx.Host.GetJsonAsync($"/pipelines/{s.Type}/runs?status=Failed");
        Assert.Equal(0, failed.GetProperty("items").GetArrayLength());
        // Each run moved through pending and running: filed under its last status only, in both scopes.
        foreach (var status in new[] { "pending", "running" })
        {
            var earlier = await fx.Host.GetJsonAsync($"/pipelines/{s.Type}/runs?status={status}");
            Assert.Equal(0, earlier.GetProperty("items").GetArrayLength());
            var namespaceWide = await fx.Host.GetJsonAsync($"/runs?status={status}&limit=100");
            Assert.DoesNotContain(namespaceWide.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("id").GetString()), id => ids.Contains(id!));
        }

        var succeededNamespaceWide = await fx.Host.GetJsonAsync("/runs?status=succeeded&limit=100");
        Assert.Subset(succeededNamespaceWide.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("id").GetString()).ToHashSet(), ids.ToHashSet<string?>());
        var all = await fx.Host.GetJsonAsync("/runs?limit=100");
        Assert.Contains(ids[0], all.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("id").GetString()));

        foreach (var bad in new[] { "/runs?status=Sleeping", "/runs?limit=0", "/runs?limit=101", "/runs?cursor=garbage", "/runs?pipeline=Bad_Name" })
        {
            using var response = await fx.Host.Http.GetAsync(bad);
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{bad}: {(int)response.StatusCode}");
        }

        using (var created = await fx.Host.Http.PostAsJsonAsync("/namespaces", new { name = "other" }))
        {
            Assert.True(created.StatusCode is HttpStatusCode.Created or HttpStatusCode.Conflict, $"POST /namespaces: {(int)created.StatusCode}");
        }

        var otherNamespace = await fx.Host.GetJsonAsync($"/namespaces/other/runs?pipeline={s.Type}");
        Assert.Equal(0, otherNamespace.GetProperty("items").GetArrayLength());
    }

    [Fact]
    public async Task Listing_drops_an_index_entry_whose_run_was_never_stored()
    {
        await using var s = await SetupAsync([new { id = "1", driver = "DRIVER" }], m => Answer(true, "ok"));
        var real = await TriggerAsync(s.Type);
        await fx.Host.WaitForRunAsync(real, RunTimeout);

        // What a crash between the index write and the run's first write leaves behind: an entry with no run.
        var ghost = Guid.NewGuid();
        var redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(fx.Redis.ConnectionString);
        await using (redis)
        {
            var db = redis.GetDatabase();
            var key = $"conveyor:{fx.ServiceId}:default:runs:p:{s.Type}";
            await db.SortedSetAddAsync(key, ghost.ToString(), DateTimeOffset.UtcNow.AddMinutes(1).ToUnixTimeMilliseconds());
            await db.SortedSetAddAsync($"conveyor:{fx.ServiceId}:default:runs", ghost.ToString(), DateTimeOffset.UtcNow.AddMinutes(1).ToUnixTimeMilliseconds());

            var page = await fx.Host.GetJsonAsync($"/pipelines/{s.Type}/runs");
            Assert.Equal([real], page.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("id").GetString()));
            Assert.Null(await db.SortedSetScoreAsync(key, ghost.ToString()));
            Assert.Null(await db.SortedSetScoreAsync($"conveyor:{fx.ServiceId}:default:runs", ghost.ToString()));
        }
    }

    [Fact]
    public async Task Run_graph_renders_as_mermaid_dot_and_svg_coloured_by_status()
    {
        await using var s = await SetupAsync(
            [new { id = "build", driver = "DRIVER" }, new { id = "test", driver = "DRIVER" }],
            m => Step(m) == "build" ? Answer(true, "ok") : Answer(false, "red"));
        var runId = await TriggerAsync(s.Type);
        await fx.Host.WaitForRunAsync(runId, RunTimeout);

        using var svg = await fx.Host.Http.GetAsync($"/runs/{runId}/graph");
        Assert.Equal("image/svg+xml", svg.Content.Headers.ContentType!.MediaType);
        var svgText = await svg.Content.ReadAsStringAsync();
        var doc = System.Xml.Linq.XDocument.Parse(svgText);
        Assert.Equal("svg", doc.Root!.Name.LocalName);
        Assert.Contains("data-step=\"build\" data-status=\"Succeeded\"", svgText, StringComparison.Ordinal);
        Assert.Contains("data-step=\"test\" data-status=\"Failed\"", svgText, StringComparison.Ordinal);
        Assert.Contains("#2e7d32", svgText, StringComparison.Ordinal);
        Assert.Contains("#c62828", svgText, StringComparison.Ordinal);

        var mermaid = await fx.Host.Http.GetStringAsync($"/runs/{runId}/graph?format=mermaid");
        Assert.StartsWith("flowchart LR", mermaid, StringComparison.Ordinal);
        Assert.Contains("s0 --> s1", mermaid, StringComparison.Ordinal);
        Assert.Contains(":::failed", mermaid, StringComparison.Ordinal);

        var dot = await fx.Host.Http.GetStringAsync($"/runs/{runId}/graph?format=dot");
        Assert.Contains("\"build\" -> \"test\";", dot, StringComparison.Ordinal);
        Assert.Contains("fillcolor=\"#c62828\"", dot, StringComparison.Ordinal);

        using var bad = await fx.Host.Http.GetAsync($"/runs/{runId}/graph?format=png");
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
    }
}
