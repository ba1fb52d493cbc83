using Conveyor.Cli;
using Conveyor.Client;
using Conveyor.Contracts;
using Conveyor.Driver.Sdk;
using Conveyor.Testing;

namespace Conveyor.IntegrationTests;

/// <summary>
/// The pipeline language's run control through the SDK client and the CLI: approve/reject, pause/resume, and the run
/// events feed that <c>runs watch</c> follows instead of polling.
/// </summary>
[Collection(EngineCollection.Name)]
public sealed class RunControlClientTests(EngineFixture fx)
{
    private async Task<(string Type, LanguageDrivers Drivers, string Deploy)> GatedPipelineAsync()
    {
        var type = EngineFixture.Unique("ctl");
        await fx.CreateDefinitionAsync(type);
        var drivers = new LanguageDrivers(fx.Nats.Url, type);
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
                new { id = "prod-gate", type = "approval" },
                new { id = "deploy", driver = deploy },
            },
        });
        return (type, drivers, deploy);
    }

    private async Task<Guid> StartRunAsync(string type)
    {
        var created = await fx.Host.PostJsonAsync("/resources", new { name = EngineFixture.Unique("r"), resource = type, pipeline = type, spec = new { image = "nginx" } });
        return Guid.Parse(created.GetProperty("runid").GetString()!);
    }

    private static async Task<RunInfo> WaitForGateAsync(ConveyorClient client, Guid runId)
    {
        RunInfo run = null!;
        await Eventually.TrueAsync(
            async () => (run = await client.GetRunAsync(runId)).Steps.Single(s => s.Id == "prod-gate").Status == StepStatus.WaitingForApproval,
            Deadlines.Event,
            "the gate should wait for approval");
        return run;
    }

    private async Task<(int Code, string Out, string Err)> CliAsync(params string[] args) => await CliAsync(new SharedWriter(), args);

    private async Task<(int Code, string Out, string Err)> CliAsync(SharedWriter stdout, params string[] args)
    {
        using var stderr = new StringWriter();
        using var cts = new CancellationTokenSource(Deadlines.Event);
        var code = await CliApp.RunAsync(["--server", fx.Host.Address.ToString(), .. args], stdout, stderr, cancellationToken: cts.Token);
        return (code, stdout.Snapshot(), stderr.ToString());
    }

    /// <summary>Output a test can read while the command still writes it.</summary>
    private sealed class SharedWriter : StringWriter
    {
        private readonly Lock _gate = new();

        public override void Write(char value)
        {
            lock (_gate)
            {
                base.Write(value);
            }
        }

        public override void Write(char[] buffer, int index, int count)
        {
            lock (_gate)
            {
                base.Write(buffer, index, count);
            }
        }

        public override void Write(ReadOnlySpan<char> buffer)
        {
            lock (_gate)
            {
                base.Write(buffer);
            }
        }

        public override void Write(string? value)
        {
            lock (_gate)
            {
                base.Write(value);
            }
        }

        public string Snapshot()
        {
            lock (_gate)
            {
                return ToString();
            }
        }
    }

    [Fact]
    public async Task The_client_approves_pauses_and_resumes_and_follows_each_transition_of_the_run_once_to_its_end()
    {
        var (type, drivers, deploy) = await GatedPipelineAsync();
        await using var _ = drivers;
        var client = new ConveyorClient(fx.Host.Http);
        var runId = await StartRunAsync(type);
        await WaitForGateAsync(client, runId);

        // A gate waits without a driver: the run can be paused and resumed meanwhile, and nothing is dispatched.
        Assert.Equal(RunStatus.Paused, (await client.PauseRunAsync(runId)).Status);
        var twice = await Assert.ThrowsAsync<ConveyorConflictApiException>(() => client.PauseRunAsync(runId));
        Assert.Equal(System.Net.HttpStatusCode.Conflict, twice.Status);
        Assert.Equal(RunStatus.Running, (await client.ResumeRunAsync(runId)).Status);

        var approved = await client.ApproveStepAsync(runId, "prod-gate", "ship it");
        var gate = approved.Steps.Single(s => s.Id == "prod-gate");
        Assert.Equal(StepStatus.Succeeded, gate.Status);
        Assert.Equal("ship it", gate.Approval!.Comment);
        var again = await Assert.ThrowsAsync<ConveyorConflictApiException>(() => client.RejectStepAsync(runId, "prod-gate"));
        Assert.Equal(System.Net.HttpStatusCode.Conflict, again.Status);

        // The feed replays the run from its start and ends once the run has ended: every transition, in order, once.
        var events = new List<RunEvent>();
        using var cts = new CancellationTokenSource(Deadlines.Event);
        await foreach (var e in client.FollowRunEventsAsync(runId, cancellationToken: cts.Token))
        {
            events.Add(e);
        }

        Assert.Equal(Enumerable.Range(1, events.Count).Select(i => (long)i), events.Select(e => e.Sequence));
        Assert.All(events, e => Assert.False(string.IsNullOrEmpty(e.EventId)));
        Assert.Contains(events, e => e.Step is null && e.Status == "Paused");
        Assert.Contains(events, e => e.Step == "prod-gate" && e.Status == "WaitingForApproval");
        Assert.Equal(RunStatus.Succeeded, events[^1].RunStatus);
        Assert.Single(drivers.Of(deploy));

        // Resuming after an event id returns only what followed it.
        var resumed = new List<RunEvent>();
        await foreach (var e in client.FollowRunEventsAsync(runId, events[2].EventId, cts.Token))
        {
            resumed.Add(e);
        }

        Assert.Equal(events.Skip(3).Select(e => e.Sequence), resumed.Select(e => e.Sequence));
    }

    [Fact]
    public async Task The_cli_watches_a_run_by_its_events_and_approves_or_rejects_its_gate()
    {
        var (type, drivers, _) = await GatedPipelineAsync();
        await using var __ = drivers;
        var client = new ConveyorClient(fx.Host.Http);

        // An hour between polls: the watch can only see the run end through the events feed.
        var approvedRun = await StartRunAsync(type);
        var output = new SharedWriter();
        var watch = CliAsync(output, "runs", "watch", approvedRun.ToString(), "--interval", "3600");
        await WaitForGateAsync(client, approvedRun);

        // Approve only once the watch has shown the gate waiting, whenever its first read happens.
        await Eventually.TrueAsync(() => Task.FromResult(output.Snapshot().Contains("WaitingForApproval", StringComparison.Ordinal)), Deadlines.Event, "the watch should show the gate waiting");
        var approve = await CliAsync("runs", "approve", approvedRun.ToString(), "prod-gate", "--comment", "ship it");
        Assert.Equal((ExitCodes.Ok, ""), (approve.Code, approve.Err));
        Assert.Contains("step prod-gate Succeeded", approve.Out, StringComparison.Ordinal);
        var watched = await watch;
        Assert.Equal(ExitCodes.Ok, watched.Code);
        Assert.Contains("WaitingForApproval", watched.Out, StringComparison.Ordinal);
        Assert.Contains($"run {approvedRun} Succeeded", watched.Out, StringComparison.Ordinal);

        var rejectedRun = await StartRunAsync(type);
        await WaitForGateAsync(client, rejectedRun);
        var pause = await CliAsync("runs", "pause", rejectedRun.ToString());
        Assert.Contains($"run {rejectedRun} Paused", pause.Out, StringComparison.Ordinal);
        var resume = await CliAsync("runs", "resume", rejectedRun.ToString());
        Assert.Contains($"run {rejectedRun} Running", resume.Out, StringComparison.Ordinal);
        var reject = await CliAsync("runs", "reject", rejectedRun.ToString(), "prod-gate", "-m", "freeze");
        Assert.Equal(ExitCodes.Ok, reject.Code);
        Assert.Contains("step prod-gate Failed", reject.Out, StringComparison.Ordinal);
        var failed = await CliAsync("runs", "watch", rejectedRun.ToString());
        Assert.Equal(ExitCodes.RunFailed, failed.Code);

        var notWaiting = await CliAsync("runs", "approve", rejectedRun.ToString(), "prod-gate");
        Assert.Equal(ExitCodes.ApiError, notWaiting.Code);
        Assert.StartsWith("error: ", notWaiting.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_cli_applies_the_language_fields_from_yaml_as_from_json()
    {
        var type = EngineFixture.Unique("yaml");
        await fx.CreateDefinitionAsync(type);
        var file = Path.Combine(Path.GetTempPath(), type + ".yaml");
        await File.WriteAllTextAsync(file, $$"""
            kind: Pipeline
            name: {{type}}-child
            resource: {{type}}
            steps:
              - id: migrate
                driver: migrate
            ---
            kind: Pipeline
            name: {{type}}
            resource: {{type}}
            steps:
              - id: build
                driver: build
                when: "params.env == 'prod'"
              - id: test
                driver: test
                dependsOn: [build]
                matrix:
                  axes:
                    os: [linux, windows]
                  maxParallel: 2
              - id: prod-gate
                type: approval
                approvers: admin
                dependsOn: [test]
              - id: deploy
                pipeline: {{type}}-child
                dependsOn: [prod-gate]
                params:
                  region: eu
            finally:
              - id: cleanup
                driver: cleanup
                when: "run.status == 'Failed'"
            """);
        try
        {
            var applied = await CliAsync("apply", "-f", file);
            Assert.True(applied.Code == ExitCodes.Ok, applied.Err);
        }
        finally
        {
            File.Delete(file);
        }

        var pipeline = await new ConveyorClient(fx.Host.Http).GetPipelineAsync(type);
        Assert.Equal("params.env == 'prod'", pipeline.Steps[0].When);
        Assert.Equal(2, pipeline.Steps[1].Matrix!.MaxParallel);
        Assert.Equal("""{"os":["linux","windows"]}""", pipeline.Steps[1].Matrix!.Axes!.Value.GetRawText());
        Assert.Equal(("approval", "admin"), (pipeline.Steps[2].Type, pipeline.Steps[2].Approvers));
        Assert.Equal(type + "-child", pipeline.Steps[3].Pipeline);
        var cleanup = Assert.Single(pipeline.Finally!);
        Assert.Equal(("cleanup", "run.status == 'Failed'"), (cleanup.Id, cleanup.When));
    }
}
