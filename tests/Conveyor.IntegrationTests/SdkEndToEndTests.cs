using System.Collections.Concurrent;
using System.Text.Json;
using Conveyor.Driver.Sdk;
using Conveyor.Client;
using Conveyor.Contracts;
using Conveyor.Testing;

namespace Conveyor.IntegrationTests;

/// <summary>The walking skeleton end to end: the SDK's client defines everything, SDK drivers run the steps.</summary>
[Collection(EngineCollection.Name)]
public sealed class SdkEndToEndTests(EngineFixture fx)
{
    private sealed class RecordingDriver(string name, string resource, ConcurrentQueue<(string Driver, DriverEvent Event)> log, bool fail = false) : IDriver
    {
        public string Name => name;

        public IReadOnlyCollection<string> Resources => [resource];

        public async Task<DriverResult> ReconcileAsync(DriverEvent driverEvent, DriverContext context, CancellationToken cancellationToken)
        {
            log.Enqueue((name, driverEvent));
            await context.Logger.LogAsync($"{name} handles {driverEvent.Resource.Name}", cancellationToken: cancellationToken);
            return fail ? DriverResult.Fail($"{name} refused") : DriverResult.Ok($"{name} done", new { driver = name, step = driverEvent.StepId });
        }
    }

    private static async Task<(ConveyorClient Client, string Type, string[] Drivers)> DefineAsync(HttpClient http)
    {
        var client = new ConveyorClient(http);
        var type = EngineFixture.Unique("svc");
        var drivers = new[] { EngineFixture.Unique("build"), EngineFixture.Unique("test"), EngineFixture.Unique("deploy") };
        await client.CreateResourceDefinitionAsync(new ResourceDefinition
        {
            Name = type,
            Version = "1.0.0",
            Schema = JsonSerializer.Deserialize<JsonElement>("""{"type":"object","properties":{"image":{"type":"string"}},"required":["image"]}"""),
        });
        await client.CreatePipelineAsync(new Pipeline
        {
            Name = type,
            Resource = type,
            Steps = drivers.Select((d, i) => new PipelineStep { Id = $"{i + 1}", Name = d, Driver = d }).ToList(),
        });
        return (client, type, drivers);
    }

    private async Task<List<DriverManager>> StartDriversAsync(string type, string[] names, ConcurrentQueue<(string, DriverEvent)> log, string? failing, CancellationToken ct)
    {
        var managers = new List<DriverManager>();
        foreach (var name in names)
        {
            var manager = new DriverManager(
                new RecordingDriver(name, type, log, fail: name == failing),
                new DriverOptions { Name = name, Resources = [type], NatsUrl = fx.Nats.Url, ShutdownGracePeriod = TimeSpan.FromSeconds(2) });
            _ = manager.RunAsync(ct);
            await manager.WaitUntilReadyAsync(ct);
            managers.Add(manager);
        }

        return managers;
    }

    [Fact]
    public async Task Three_sdk_drivers_each_run_once_in_order_and_the_run_succeeds()
    {
        var (client, type, drivers) = await DefineAsync(fx.Host.Http);
        var log = new ConcurrentQueue<(string Driver, DriverEvent Event)>();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var managers = await StartDriversAsync(type, drivers, log, failing: null, cts.Token);
        try
        {
            var created = await client.CreateResourceAsync(new CreateResourceRequest
            {
                Name = "api",
                ResourceType = type,
                Pipeline = type,
                Spec = JsonSerializer.Deserialize<JsonElement>("""{"image":"api:1"}"""),
            });
            Assert.Equal("Resource created successfully", created.Message);

            var run = await client.WaitForRunAsync(created.RunId, Deadlines.Event);

            Assert.Equal(RunStatus.Succeeded, run.Status);
            Assert.Equal(drivers, log.Select(e => e.Driver));
            Assert.Equal(["1", "2", "3"], log.Select(e => e.Event.StepId));
            Assert.All(log, e => Assert.Equal(1, e.Event.Attempt));
            Assert.All(log, e => Assert.Equal(created.RunId.ToString(), e.Event.RunId));
            Assert.Equal(["create", "process", "process"], log.Select(e => e.Event.Event));
            Assert.All(run.Steps, s => Assert.Equal(StepStatus.Succeeded, s.Status));
            Assert.Equal($"{drivers[2]} done", run.Steps[2].Message);
            var data = run.Steps[0].Data!.Value;
            Assert.Equal(drivers[0], data.GetProperty("driver").GetString());
            Assert.Equal("1", data.GetProperty("step").GetString());

            var resource = await client.GetResourceAsync(type, "api");
            Assert.All(drivers, d => Assert.True(resource.Metadata!.ContainsKey("driverresults." + d)));
        }
        finally
        {
            await cts.CancelAsync();
            foreach (var manager in managers)
            {
                await manager.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task Failing_sdk_driver_fails_the_run_at_its_step_and_later_steps_are_not_dispatched()
    {
        var (client, type, drivers) = await DefineAsync(fx.Host.Http);
        var log = new ConcurrentQueue<(string Driver, DriverEvent Event)>();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var managers = await StartDriversAsync(type, drivers, log, failing: drivers[1], cts.Token);
        try
        {
            var created = await client.CreateResourceAsync(new CreateResourceRequest
            {
                Name = "api",
                ResourceType = type,
                Pipeline = type,
                Spec = JsonSerializer.Deserialize<JsonElement>("""{"image":"api:1"}"""),
            });
            var run = await client.WaitForRunAsync(created.RunId, Deadlines.Event);

            Assert.Equal(RunStatus.Failed, run.Status);
            Assert.Equal([StepStatus.Succeeded, StepStatus.Failed, StepStatus.Skipped], run.Steps.Select(s => s.Status));
            Assert.Equal($"{drivers[1]} refused", run.Steps[1].Message);
            Assert.Equal(drivers[..2], log.Select(e => e.Driver));
        }
        finally
        {
            await cts.CancelAsync();
            foreach (var manager in managers)
            {
                await manager.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task Client_lists_cancels_retries_and_draws_runs()
    {
        var (client, type, drivers) = await DefineAsync(fx.Host.Http);
        // No driver runs, so the run stays at its first step until cancelled.
        var created = await client.CreateResourceAsync(new CreateResourceRequest
        {
            Name = "api",
            ResourceType = type,
            Pipeline = type,
            Spec = JsonSerializer.Deserialize<JsonElement>("""{"image":"api:1"}"""),
        });

        var page = await client.ListRunsAsync(pipeline: type, status: RunStatus.Running);
        Assert.Equal(created.RunId, Assert.Single(page.Items).Id);
        var cancelled = await client.CancelRunAsync(created.RunId, "not today");
        Assert.Equal(RunStatus.Cancelled, cancelled.Status);
        var conflict = await Assert.ThrowsAnyAsync<ConveyorApiException>(() => client.CancelRunAsync(created.RunId));
        Assert.Equal(409, (int)conflict.Status);

        var retried = await client.RetryRunAsync(created.RunId);
        Assert.Equal(RunStatus.Running, retried.Status);
        Assert.Equal(2, retried.RunAttempt);
        var all = new List<RunSummaryInfo>();
        await foreach (var run in client.ListAllRunsAsync(pipeline: type))
        {
            all.Add(run);
        }

        Assert.Equal(created.RunId, Assert.Single(all).Id);
        Assert.StartsWith("flowchart LR", await client.GetRunGraphAsync(created.RunId, "mermaid"), StringComparison.Ordinal);
        Assert.Contains("<svg", await client.GetRunGraphAsync(created.RunId), StringComparison.Ordinal);
        Assert.Equal(drivers[0], retried.Steps[0].Driver);
        await client.CancelRunAsync(created.RunId);
    }

    private sealed class PatientDriver(string name, string resource) : IDriver
    {
        public TaskCompletionSource<string?> Cancelled { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Started { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public ConcurrentQueue<DriverEvent> Events { get; } = new();

        public string Name => name;

        public IReadOnlyCollection<string> Resources => [resource];

        public async Task<DriverResult> ReconcileAsync(DriverEvent driverEvent, DriverContext context, CancellationToken cancellationToken)
        {
            Events.Enqueue(driverEvent);
            if (driverEvent.StepId != "wait")
            {
                return DriverResult.Ok("ok", new { artifact = driverEvent.StepId + ".tar" });
            }

            Started.TrySetResult();
            try
            {
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                Cancelled.TrySetResult(context.CancellationReason);
                throw;
            }

            return DriverResult.Ok();
        }
    }

    [Fact]
    public async Task Cancelling_a_run_cancels_the_sdk_drivers_token_and_params_and_inputs_arrive()
    {
        var client = new ConveyorClient(fx.Host.Http);
        var type = EngineFixture.Unique("cxl");
        var name = EngineFixture.Unique("patient");
        await client.CreateResourceDefinitionAsync(new ResourceDefinition { Name = type, Schema = JsonSerializer.Deserialize<JsonElement>("{}") });
        await fx.Host.PostJsonAsync("/pipelines", new
        {
            name = type,
            resource = type,
            steps = new object[]
            {
                new { id = "prep", driver = name },
                new { id = "wait", driver = name, @params = new { mode = "slow" } },
            },
        });
        var driver = new PatientDriver(name, type);
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var manager = new DriverManager(driver, new DriverOptions { Name = name, Resources = [type], NatsUrl = fx.Nats.Url });
        _ = manager.RunAsync(cts.Token);
        await manager.WaitUntilReadyAsync(cts.Token);
        try
        {
            var created = await client.CreateResourceAsync(new CreateResourceRequest { Name = "x", ResourceType = type, Pipeline = type, Spec = JsonSerializer.Deserialize<JsonElement>("{}") });
            await driver.Started.Task.WaitAsync(Deadlines.Event);
            var wait = driver.Events.Single(e => e.StepId == "wait");
            Assert.Equal("slow", wait.Params!.Value.GetProperty("mode").GetString());
            Assert.Equal("prep.tar", wait.Inputs["prep"].GetProperty("artifact").GetString());
            Assert.Equal(1, wait.Attempt);

            await client.CancelRunAsync(created.RunId, "release frozen");

            Assert.Equal("release frozen", await driver.Cancelled.Task.WaitAsync(Deadlines.Event));
            var run = await client.GetRunAsync(created.RunId);
            Assert.Equal(RunStatus.Cancelled, run.Status);
            Assert.Equal(StepStatus.Cancelled, run.Steps[1].Status);
        }
        finally
        {
            await cts.CancelAsync();
            await manager.DisposeAsync();
        }
    }

    [Fact]
    public async Task Client_updates_versions_and_deletes_resources()
    {
        var (client, type, _) = await DefineAsync(fx.Host.Http);
        await client.CreateResourceAsync(new CreateResourceRequest { Name = "svc", ResourceType = type, Spec = JsonSerializer.Deserialize<JsonElement>("""{"image":"v1"}""") });
        var current = await client.GetResourceAsync(type, "svc");

        var updated = await client.UpdateResourceAsync(current with { Spec = JsonSerializer.Deserialize<JsonElement>("""{"image":"v2"}""") });

        Assert.Equal("2", updated.Metadata!["version"]);
        Assert.Equal("v1", (await client.GetResourceVersionAsync(type, "svc", 1)).Spec!.Value.GetProperty("image").GetString());
        Assert.Equal("v2", (await client.GetResourceVersionAsync(type, "svc", 2)).Spec!.Value.GetProperty("image").GetString());
        var invalid = await Assert.ThrowsAnyAsync<ConveyorApiException>(() => client.UpdateResourceAsync(current with { Spec = JsonSerializer.Deserialize<JsonElement>("""{"image":7}""") }));
        Assert.Equal(400, (int)invalid.Status);
        Assert.True(invalid.Errors!.ContainsKey("spec.image"));

        await client.DeleteResourceAsync(type, "svc");
        var gone = await Assert.ThrowsAnyAsync<ConveyorApiException>(() => client.GetResourceAsync(type, "svc"));
        Assert.Equal(404, (int)gone.Status);

        // A deleted resource's versions go with it, so a re-created one never shows them.
        var oldVersion = await Assert.ThrowsAnyAsync<ConveyorApiException>(() => client.GetResourceVersionAsync(type, "svc", 1));
        Assert.Equal(404, (int)oldVersion.Status);
    }

    [Fact]
    public async Task Client_surfaces_problem_details_as_a_typed_exception()
    {
        var client = new ConveyorClient(fx.Host.Http);
        var ex = await Assert.ThrowsAnyAsync<ConveyorApiException>(() => client.CreateResourceAsync(new CreateResourceRequest
        {
            Name = "x",
            ResourceType = "no-such-type",
            Spec = JsonSerializer.Deserialize<JsonElement>("{}"),
        }));
        Assert.Equal(404, (int)ex.Status);
        Assert.Equal("urn:conveyor:problem:not-found", ex.Type);
        Assert.Contains("no-such-type", ex.Error, StringComparison.Ordinal);
    }
}
