using System.Collections.Concurrent;
using System.Text.Json;
using Conveyor.Cli;
using Conveyor.Driver.Sdk;
using Conveyor.Testing;

namespace Conveyor.IntegrationTests;

/// <summary>The <c>conveyor</c> command line, run through its entry point against a running engine.</summary>
[Collection(EngineCollection.Name)]
public sealed class CliTests(EngineFixture fx) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("conveyor-cli-").FullName;
    private readonly CliRunner _cli = new(fx.Host.Address);

    public void Dispose()
    {
        Directory.Delete(_dir, recursive: true);
        _cli.Dispose();
    }

    private Task<(int Code, string Out, string Err)> CliAsync(params string[] args) => _cli.RunAsync(args);

    private string Write(string name, string text)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    private async Task<DriverManager> StartDriverAsync(string driver, string type, CancellationToken ct)
    {
        var manager = new DriverManager(
            new LoggingDriver(driver, type),
            new DriverOptions { Name = driver, Resources = [type], NatsUrl = fx.Nats.Url, ShutdownGracePeriod = TimeSpan.FromSeconds(2) });
        _ = manager.RunAsync(ct);
        await manager.WaitUntilReadyAsync(ct);
        return manager;
    }

    private static string Manifest(string type, string driver, string resource, string lastStep = "deploy") => $"""
        # A resource type, a DAG pipeline and a resource, in one file.
        kind: ResourceDefinition
        name: {type}
        version: "1.0.0"
        schema:
          type: object
          properties:
            image: {"{"} type: string {"}"}
            replicas: {"{"} type: integer, minimum: 1 {"}"}
          required: [image]
        ---
        name: {type}
        resource: {type}
        steps:
          - id: build
            driver: {driver}
            params: {"{"} target: linux {"}"}
          - id: lint
            driver: {driver}
            dependsOn: []
          - id: {lastStep}
            driver: {driver}
            dependsOn: [build, lint]
            retry: {"{"} maxAttempts: 2, initialDelay: 10ms {"}"}
        ---
        kind: Resource
        name: {resource}
        resource: {type}
        pipeline: {type}
        spec:
          image: "web:1"
          replicas: 2
        """;

    [Fact]
    public async Task Get_lists_definitions_pipelines_and_resources()
    {
        var type = EngineFixture.Unique("cliget");
        var applied = await CliAsync("apply", "-f", Write("get.yaml", Manifest(type, EngineFixture.Unique("nobody"), "web")));
        Assert.True(applied.Code == ExitCodes.Ok, applied.Err);

        var definitions = await CliAsync("get", "definitions", "--prefix", type, "-o", "name");
        var pipelines = await CliAsync("get", "pipelines", "--resource", type);
        var resources = await CliAsync("get", "resources", type, "--pipeline", type, "-o", "name");
        var badPrefix = await CliAsync("get", "resources", "--prefix", "w");

        Assert.Equal($"resource-definition/{type}", definitions.Out.Trim());
        Assert.Equal(["NAME", "RESOURCE", "STEPS", "REVISION"], pipelines.Out.Split('\n')[0].Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal([type, type, "3", "1"], pipelines.Out.Split('\n')[1].Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal($"resource/{type}/web", resources.Out.Trim());
        Assert.Equal(ExitCodes.Usage, badPrefix.Code);
    }

    [Fact]
    public async Task Apply_then_list_show_watch_and_read_logs_of_the_run_it_started()
    {
        var type = EngineFixture.Unique("cli");
        var driver = EngineFixture.Unique("drv");
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await using var manager = await StartDriverAsync(driver, type, cts.Token);

        var (code, output, error) = await CliAsync("apply", "-f", Write("app.yaml", Manifest(type, driver, "web")));
        Assert.True(code == ExitCodes.Ok, error);
        var lines = output.Trim().Split('\n');
        Assert.Equal($"resource-definition/{type} applied", lines[0]);
        Assert.Equal($"pipeline/{type} applied", lines[1]);
        Assert.StartsWith($"resource/{type}/web created (run ", lines[2], StringComparison.Ordinal);
        var runId = lines[2].Split("(run ")[1].TrimEnd(')', '\r');

        // YAML scalars kept their types: the pipeline's retry and the resource's integer replicas were accepted.
        var pipeline = await fx.Host.GetJsonAsync($"/pipelines/{type}");
        Assert.Equal(2, pipeline.GetProperty("steps")[2].GetProperty("retry").GetProperty("maxAttempts").GetInt32());

        var watch = await CliAsync("runs", "watch", runId, "--interval", "0.1");
        Assert.True(watch.Code == ExitCodes.Ok, watch.Err + watch.Out);
        Assert.Contains("✔ build", watch.Out, StringComparison.Ordinal);
        Assert.Contains("after build, lint", watch.Out, StringComparison.Ordinal);
        Assert.Contains("3/3 steps", watch.Out, StringComparison.Ordinal);
        Assert.EndsWith($"run {runId} Succeeded", watch.Out.TrimEnd(), StringComparison.Ordinal);

        var list = await CliAsync("runs", "list", "--pipeline", type);
        Assert.Equal(ExitCodes.Ok, list.Code);
        Assert.StartsWith("ID", list.Out, StringComparison.Ordinal);
        Assert.Contains(runId, list.Out, StringComparison.Ordinal);

        var show = await CliAsync("runs", "show", runId);
        Assert.Equal(ExitCodes.Ok, show.Code);
        Assert.Contains("Succeeded", show.Out, StringComparison.Ordinal);
        Assert.Contains("deploy", show.Out, StringComparison.Ordinal);
        var json = await CliAsync("runs", "show", runId, "--json");
        Assert.Equal(runId, JsonDocument.Parse(json.Out).RootElement.GetProperty("id").GetString());

        string logs = "";
        await Eventually.TrueAsync(
            async () =>
            {
                logs = (await CliAsync("logs", runId)).Out;
                return logs.Split('\n').Count(l => l.Contains($"[{driver}/", StringComparison.Ordinal)) == 3;
            },
            Deadlines.Event,
            "three log lines should be stored");
        Assert.Contains($"[{driver}/build] building web", logs, StringComparison.Ordinal);
        var followed = await CliAsync("logs", "-f", runId, "--step", "lint");
        Assert.Equal(ExitCodes.Ok, followed.Code);
        Assert.Equal($"[{driver}/lint] building web", Assert.Single(followed.Out.Trim().Split('\n')).Split(' ', 2)[1]);

        // Applying the same files again changes nothing, and says so: no new revision, no new version.
        var revision = (await fx.Host.GetJsonAsync($"/pipelines/{type}")).GetProperty("revision").GetInt32();
        var again = await CliAsync("apply", "-f", _dir);
        Assert.True(again.Code == ExitCodes.Ok, again.Err + again.Out);
        Assert.Contains($"resource-definition/{type} unchanged", again.Out, StringComparison.Ordinal);
        Assert.Contains($"pipeline/{type} unchanged", again.Out, StringComparison.Ordinal);
        Assert.Contains($"resource/{type}/web unchanged (version 1)", again.Out, StringComparison.Ordinal);
        Assert.Equal(revision, (await fx.Host.GetJsonAsync($"/pipelines/{type}")).GetProperty("revision").GetInt32());

        // A changed file updates the resource instead of failing on it.
        File.WriteAllText(Path.Combine(_dir, "changed.yaml"), $$$"""
            kind: Resource
            name: web
            resource: {{{type}}}
            pipeline: {{{type}}}
            metadata: {team: a}
            spec: {image: "nginx:1.28"}
            """);
        var changed = await CliAsync("apply", "-f", Path.Combine(_dir, "changed.yaml"));
        Assert.True(changed.Code == ExitCodes.Ok, changed.Err + changed.Out);
        Assert.Contains($"resource/{type}/web updated (version 2)", changed.Out, StringComparison.Ordinal);

        // A manual trigger for the existing resource, watched to its end; the same idempotency key gives the same run.
        var triggered = await CliAsync("runs", "trigger", type, "--resource", "web", "--priority", "4", "--idempotency-key", "cli-1", "--watch");
        Assert.True(triggered.Code == ExitCodes.Ok, triggered.Err + triggered.Out);
        var triggeredId = triggered.Out.Split('\n')[0].Split(' ')[1];
        Assert.EndsWith($"run {triggeredId} Succeeded", triggered.Out.TrimEnd(), StringComparison.Ordinal);
        Assert.Equal(4, (await fx.Host.GetJsonAsync($"/runs/{triggeredId}")).GetProperty("priority").GetInt32());
        var repeated = await CliAsync("runs", "trigger", type, "-r", "web", "--idempotency-key", "cli-1");
        Assert.Equal(ExitCodes.Ok, repeated.Code);
        Assert.StartsWith($"run {triggeredId} ", repeated.Out, StringComparison.Ordinal);
        var unknown = await CliAsync("runs", "trigger", type, "-r", "nope");
        Assert.Equal(ExitCodes.ApiError, unknown.Code);
        Assert.StartsWith("error: 404 Not Found: ", unknown.Err.Trim(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Watch_exits_1_for_a_failed_run_and_retry_and_cancel_drive_it()
    {
        var type = EngineFixture.Unique("cli");
        var driver = EngineFixture.Unique("drv");
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await using var manager = await StartDriverAsync(driver, type, cts.Token);
        var (code, output, error) = await CliAsync("apply", "-f", Write("app.yaml", Manifest(type, driver, "web", lastStep: "fail-deploy")));
        Assert.True(code == ExitCodes.Ok, error);
        var runId = output.Split("(run ")[1].Split(')')[0];

        var watch = await CliAsync("runs", "watch", runId, "--interval", "0.1");
        Assert.True(watch.Code == ExitCodes.RunFailed, watch.Out + watch.Err);
        Assert.True(watch.Out.Contains("✘ fail-deploy", StringComparison.Ordinal), watch.Out);
        Assert.EndsWith($"run {runId} Failed", watch.Out.TrimEnd(), StringComparison.Ordinal);

        var retry = await CliAsync("runs", "retry", runId, "--watch");
        Assert.Equal(ExitCodes.RunFailed, retry.Code);
        Assert.StartsWith($"run {runId} Running (run attempt 2)", retry.Out, StringComparison.Ordinal);
        Assert.Contains("(run attempt 2)", retry.Out, StringComparison.Ordinal);

        // A run whose driver never comes waits at its first step until cancelled.
        var idle = EngineFixture.Unique("cli");
        var applied = await CliAsync("apply", "-f", Write("idle.yaml", Manifest(idle, EngineFixture.Unique("nobody"), "api")));
        var idleRun = applied.Out.Split("(run ")[1].Split(')')[0];

        // On a terminal, watch redraws its view in place until the run ends (here: is cancelled).
        using var screen = new StringWriter();
        using var terminal = TextWriter.Synchronized(screen);
        string Screen()
        {
            lock (terminal)
            {
                return screen.ToString();
            }
        }

        using var cancelWatch = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var live = CliApp.RunAsync(
            ["--server", fx.Host.Address.ToString(), "runs", "watch", idleRun, "--interval", "0.1"], terminal, TextWriter.Null, interactive: true, cancellationToken: cancelWatch.Token);
        await Eventually.TrueAsync(
            () => System.Text.RegularExpressions.Regex.IsMatch(Screen(), "\u001b\\[[0-9]+A"), Deadlines.Event, "watch should move up to redraw");
        var cancel = await CliAsync("runs", "cancel", idleRun, "--reason", "not today");
        Assert.Equal(ExitCodes.RunFailed, await live);
        Assert.Contains("\u001b[K", Screen(), StringComparison.Ordinal);
        Assert.EndsWith($"run {idleRun} Cancelled", Screen().TrimEnd(), StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Ok, cancel.Code);
        Assert.Equal($"run {idleRun} Cancelled", cancel.Out.Trim());
        var again = await CliAsync("runs", "cancel", idleRun);
        Assert.Equal(ExitCodes.ApiError, again.Code);
        Assert.Equal($"error: 409 Conflict: run {idleRun} already ended Cancelled; only a Pending, Queued or Running run can be cancelled", again.Err.Trim());
    }

    [Fact]
    public async Task Bad_files_unknown_runs_and_a_dead_server_each_get_one_clear_error_line()
    {
        var broken = await CliAsync("apply", "-f", Write("broken.yaml", "name: x\nsteps: [a, b\n"));
        Assert.Equal(ExitCodes.Usage, broken.Code);
        var line = Assert.Single(broken.Err.Trim().Split('\n'));
        Assert.StartsWith($"error: {Path.Combine(_dir, "broken.yaml")}: not valid YAML at line ", line, StringComparison.Ordinal);

        var unknownKind = await CliAsync("apply", "-f", Write("odd.json", """{"kind": "Gadget", "name": "x"}"""));
        Assert.Equal(ExitCodes.Usage, unknownKind.Code);
        Assert.Contains("unknown kind 'Gadget'", unknownKind.Err, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Usage, (await CliAsync("apply", "-f", Path.Combine(_dir, "missing.yaml"))).Code);

        // The server's validation problem arrives as one line naming the field.
        var type = EngineFixture.Unique("cli");
        var invalid = await CliAsync("apply", "-f", Write("bad.yaml", $$$"""
            name: {{{type}}}
            schema: {type: object, properties: {image: {type: string}}, required: [image]}
            ---
            kind: Resource
            name: web
            resource: {{{type}}}
            spec: {image: 42}
            """));
        Assert.Equal(ExitCodes.ApiError, invalid.Code);
        Assert.Contains($"resource-definition/{type} applied", invalid.Out, StringComparison.Ordinal);
        line = Assert.Single(invalid.Err.Trim().Split('\n'));
        Assert.StartsWith("error: 400 Bad Request: ", line, StringComparison.Ordinal);
        Assert.Contains("spec.image", line, StringComparison.Ordinal);

        var id = Guid.NewGuid();
        var unknown = await CliAsync("runs", "show", id.ToString());
        Assert.Equal(ExitCodes.ApiError, unknown.Code);
        Assert.Equal($"error: 404 Not Found: run {id} not found", unknown.Err.Trim());
        var notAnId = await CliAsync("runs", "watch", "nope");
        Assert.Equal(ExitCodes.Usage, notAnId.Code);
        Assert.Contains("'nope' is not a run: give its id", notAnId.Err, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Usage, (await CliAsync("runs", "frobnicate")).Code);

        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var dead = await CliApp.RunAsync(["runs", "list", "--server", $"http://127.0.0.1:{ServerProcess.FindFreePort()}"], stdout, stderr);
        Assert.Equal(ExitCodes.Unreachable, dead);
        Assert.StartsWith("error: cannot reach Conveyor at http://127.0.0.1:", stderr.ToString(), StringComparison.Ordinal);
    }

    /// <summary>A type, a pipeline of <paramref name="steps"/> (id, dependencies) run by one driver, and a resource that starts it — as one JSON array, kinds inferred.</summary>
    private static string JsonManifest(string type, string driver, params (string Id, string[] DependsOn)[] steps) => JsonSerializer.Serialize(new object[]
    {
        new { name = type, version = "1.0.0", schema = new { type = "object", properties = new { image = new { type = "string" } }, required = new[] { "image" } } },
        new { name = type, resource = type, steps = steps.Select(s => new { id = s.Id, driver, dependsOn = s.DependsOn }).ToArray() },
        new { name = "web", resource = type, pipeline = type, spec = new { image = "web:1" } },
    });

    private async Task<DriverManager> StartDriverAsync(IDriver driver, string type, CancellationToken ct)
    {
        var manager = new DriverManager(driver, new DriverOptions { Name = driver.Name, Resources = [type], NatsUrl = fx.Nats.Url, ShutdownGracePeriod = TimeSpan.FromSeconds(2) });
        _ = manager.RunAsync(ct);
        await manager.WaitUntilReadyAsync(ct);
        return manager;
    }

    [Fact]
    public async Task Apply_from_json_files_creates_what_they_describe()
    {
        var type = EngineFixture.Unique("cli");
        var driver = EngineFixture.Unique("drv");
        var array = Write("app.json", JsonManifest(type, driver, ("build", []), ("deploy", ["build"])));
        var single = Write("api.json", JsonSerializer.Serialize(new { kind = "Resource", name = "api", resource = type, spec = new { image = "api:2" } }));

        var (code, output, error) = await CliAsync("apply", "-f", array, "-f", single);
        Assert.True(code == ExitCodes.Ok, error + output);
        var lines = output.Trim().Split('\n').Select(l => l.TrimEnd('\r')).ToArray();
        Assert.Equal($"resource-definition/{type} applied", lines[0]);
        Assert.Equal($"pipeline/{type} applied", lines[1]);
        Assert.StartsWith($"resource/{type}/web created (run ", lines[2], StringComparison.Ordinal);
        Assert.StartsWith($"resource/{type}/api created (announced to drivers; log id ", lines[3], StringComparison.Ordinal);
        Assert.Equal(4, lines.Length);

        var pipeline = await fx.Host.GetJsonAsync($"/pipelines/{type}");
        Assert.Equal(["build", "deploy"], pipeline.GetProperty("steps").EnumerateArray().Select(s => s.GetProperty("id").GetString()));
        Assert.Equal("build", pipeline.GetProperty("steps")[1].GetProperty("dependsOn")[0].GetString());
        Assert.Equal("api:2", (await fx.Host.GetJsonAsync($"/resources/{type}/api")).GetProperty("spec").GetProperty("image").GetString());
        var runId = lines[2].Split("(run ")[1].TrimEnd(')');
        var run = await fx.Host.GetJsonAsync($"/runs/{runId}");
        Assert.Equal(type, run.GetProperty("pipeline").GetString());
        Assert.Equal("web", run.GetProperty("resourceName").GetString());
        await fx.Host.PostJsonAsync($"/runs/{runId}/cancel", new { reason = "no driver in this test" }, 200);
    }

    [Fact]
    public async Task Logs_follow_prints_lines_of_a_live_run_as_they_are_written_and_ends_when_the_run_ends()
    {
        var type = EngineFixture.Unique("cli");
        var driver = new GatedDriver(EngineFixture.Unique("drv"), type);
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await using var manager = await StartDriverAsync(driver, type, cts.Token);
        var (code, output, error) = await CliAsync("apply", "-f", Write("app.json", JsonManifest(type, driver.Name, ("build", []))));
        Assert.True(code == ExitCodes.Ok, error + output);
        var runId = output.Split("(run ")[1].Split(')')[0];
        await driver.Entered.Task.WaitAsync(Deadlines.Event);

        using var screen = new StringWriter();
        using var stdout = TextWriter.Synchronized(screen);
        string Lines()
        {
            lock (stdout)
            {
                return screen.ToString();
            }
        }

        var follow = CliApp.RunAsync(["--server", fx.Host.Address.ToString(), "logs", "-f", runId], stdout, TextWriter.Null, cancellationToken: cts.Token);
        await Eventually.TrueAsync(() => Lines().Contains("started build", StringComparison.Ordinal), Deadlines.Event, "the line written before the follow began");
        Assert.False(follow.IsCompleted, "follow must keep going while the run runs");
        Assert.DoesNotContain("finishing build", Lines(), StringComparison.Ordinal);

        // Written only now, after the follow has printed the earlier line; then the run ends and so must the follow.
        driver.Release.TrySetResult();
        Assert.Equal(ExitCodes.Ok, await follow.WaitAsync(Deadlines.Event));
        var printed = Lines().Trim().Split('\n').Select(l => l.TrimEnd('\r').Split(' ', 2)[1]).ToArray();
        Assert.Equal([$"[{driver.Name}/build] started build", $"[{driver.Name}/build] finishing build"], printed);
        Assert.Equal("Succeeded", (await fx.Host.GetJsonAsync($"/runs/{runId}")).GetProperty("status").GetString());
    }

    [Fact]
    public async Task Retry_reruns_only_the_steps_that_had_not_succeeded()
    {
        var type = EngineFixture.Unique("cli");
        var driver = new FlakyDriver(EngineFixture.Unique("drv"), type, flaky: "test");
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await using var manager = await StartDriverAsync(driver, type, cts.Token);

        // build and lint succeed; test fails on its first call, so deploy (after test and lint) is skipped.
        var manifest = JsonManifest(type, driver.Name, ("build", []), ("lint", []), ("test", ["build"]), ("deploy", ["test", "lint"]));
        var (code, output, error) = await CliAsync("apply", "-f", Write("app.json", manifest));
        Assert.True(code == ExitCodes.Ok, error + output);
        var runId = output.Split("(run ")[1].Split(')')[0];
        var failed = await fx.Host.WaitForRunAsync(runId, Deadlines.Event);
        Assert.Equal("Failed", failed.GetProperty("status").GetString());
        string Status(JsonElement run, string step) => run.GetProperty("steps").EnumerateArray().Single(s => s.GetProperty("id").GetString() == step).GetProperty("status").GetString()!;
        Assert.Equal(["Succeeded", "Succeeded", "Failed", "Skipped"], new[] { "build", "lint", "test", "deploy" }.Select(s => Status(failed, s)));

        var retry = await CliAsync("runs", "retry", runId, "--watch");
        Assert.True(retry.Code == ExitCodes.Ok, retry.Err + retry.Out);
        Assert.StartsWith($"run {runId} ", retry.Out, StringComparison.Ordinal);
        Assert.EndsWith($"run {runId} Succeeded", retry.Out.TrimEnd(), StringComparison.Ordinal);

        // The driver saw build and lint once, in the first run attempt only; test twice; deploy once, after the retry.
        Assert.Equal(
            ["build:1", "deploy:1", "lint:1", "test:1", "test:2"],
            driver.Calls.Select(c => $"{c.Step}:{c.Attempt}").Order(StringComparer.Ordinal));
        var done = await fx.Host.GetJsonAsync($"/runs/{runId}");
        Assert.Equal(2, done.GetProperty("runAttempt").GetInt32());
        int Attempts(string step) => done.GetProperty("steps").EnumerateArray().Single(s => s.GetProperty("id").GetString() == step).GetProperty("attempts").GetArrayLength();
        Assert.Equal([1, 1, 2, 1], new[] { "build", "lint", "test", "deploy" }.Select(Attempts));
        Assert.All(new[] { "build", "lint", "test", "deploy" }, s => Assert.Equal("Succeeded", Status(done, s)));
    }
    /// <summary>Records every call; the step named <c>flaky</c> fails the first time it is called.</summary>
    private sealed class FlakyDriver(string name, string resource, string flaky) : IDriver
    {
        private int _flakyCalls;

        public ConcurrentQueue<(string Step, int Attempt)> Calls { get; } = new();

        public string Name => name;

        public IReadOnlyCollection<string> Resources => [resource];

        public Task<DriverResult> ReconcileAsync(DriverEvent driverEvent, DriverContext context, CancellationToken cancellationToken)
        {
            Calls.Enqueue((driverEvent.StepId!, driverEvent.Attempt ?? 0));
            return Task.FromResult(driverEvent.StepId == flaky && Interlocked.Increment(ref _flakyCalls) == 1
                ? DriverResult.Fail($"{flaky} flaked")
                : DriverResult.Ok("done"));
        }
    }

    private sealed class LoggingDriver(string name, string resource) : IDriver
    {
        public string Name => name;

        public IReadOnlyCollection<string> Resources => [resource];

        public async Task<DriverResult> ReconcileAsync(DriverEvent driverEvent, DriverContext context, CancellationToken cancellationToken)
        {
            await context.Logger.LogAsync($"building {driverEvent.Resource.Name}", cancellationToken: cancellationToken);
            return driverEvent.StepId?.StartsWith("fail", StringComparison.Ordinal) == true
                ? DriverResult.Fail($"{driverEvent.StepId} broke")
                : DriverResult.Ok("done");
        }
    }
}
