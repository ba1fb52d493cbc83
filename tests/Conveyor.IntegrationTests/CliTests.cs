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

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private async Task<(int Code, string Out, string Err)> CliAsync(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var code = await CliApp.RunAsync(["--server", fx.Host.Address.ToString(), .. args], stdout, stderr, cancellationToken: cts.Token);
        return (code, stdout.ToString(), stderr.ToString());
    }

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
    public async Task Apply_then_list_show_watch_and_read_logs_of_the_run_it_started()
    {
        var type = EngineFixture.Unique("cli");
        var driver = EngineFixture.Unique("drv");
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(90));
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
            TimeSpan.FromSeconds(15),
            "three log lines should be stored");
        Assert.Contains($"[{driver}/build] building web", logs, StringComparison.Ordinal);
        var followed = await CliAsync("logs", "-f", runId, "--step", "lint");
        Assert.Equal(ExitCodes.Ok, followed.Code);
        Assert.Equal($"[{driver}/lint] building web", Assert.Single(followed.Out.Trim().Split('\n')).Split(' ', 2)[1]);

        // Applying again updates the resource instead of failing on it.
        var again = await CliAsync("apply", "-f", _dir);
        Assert.True(again.Code == ExitCodes.Ok, again.Err + again.Out);
        Assert.Contains($"resource/{type}/web updated (version 2)", again.Out, StringComparison.Ordinal);

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
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(90));
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

        using var cancelWatch = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var live = CliApp.RunAsync(
            ["--server", fx.Host.Address.ToString(), "runs", "watch", idleRun, "--interval", "0.1"], terminal, TextWriter.Null, interactive: true, cancellationToken: cancelWatch.Token);
        await Eventually.TrueAsync(
            () => System.Text.RegularExpressions.Regex.IsMatch(Screen(), "\u001b\\[[0-9]+A"), TimeSpan.FromSeconds(15), "watch should move up to redraw");
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
        Assert.Contains("'nope' is not a run id", notAnId.Err, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Usage, (await CliAsync("runs", "frobnicate")).Code);

        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var dead = await CliApp.RunAsync(["runs", "list", "--server", $"http://127.0.0.1:{ServerProcess.FindFreePort()}"], stdout, stderr);
        Assert.Equal(ExitCodes.Unreachable, dead);
        Assert.StartsWith("error: cannot reach Conveyor at http://127.0.0.1:", stderr.ToString(), StringComparison.Ordinal);
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
