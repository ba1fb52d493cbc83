using System.Collections.Concurrent;
using System.Text.Json;
using Conveyor.Driver.Sdk;
using Conveyor.Client;
using Conveyor.Samples.Shell;
using Conveyor.Testing;
using NATS.Client.Core;
using Conveyor.Contracts;

namespace Conveyor.IntegrationTests;

/// <summary>The shell sample driver runs real commands for pipeline steps and streams their output into the run log.</summary>
[Collection(EngineCollection.Name)]
public sealed class ShellDriverTests(EngineFixture fx)
{
    [Fact]
    public async Task Commands_run_their_output_reaches_the_run_log_and_exit_codes_decide_the_step()
    {
        var type = EngineFixture.Unique("sh");
        var name = EngineFixture.Unique("shell");
        await fx.CreateDefinitionAsync(type);
        await fx.Host.PostJsonAsync("/pipelines", new
        {
            name = type,
            resource = type,
            steps = new object[]
            {
                new { id = "build", driver = name, @params = new { command = "echo building $CONVEYOR_RESOURCE; echo warning >&2; test \"$CONVEYOR_STEP\" = build" } },
                new { id = "test", driver = name, @params = new { command = "echo \"$CONVEYOR_INPUTS\"; exit 3" } },
            },
        });
        await using var nats = new NatsConnection(NatsOpts.Default with { Url = fx.Nats.Url });
        var lines = new ConcurrentQueue<JsonElement>();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var subscription = await nats.SubscribeCoreAsync<byte[]>("live.logs.>", cancellationToken: cts.Token);
        var listen = Task.Run(async () =>
        {
            await foreach (var msg in subscription.Msgs.ReadAllAsync(cts.Token))
            {
                lines.Enqueue(JsonDocument.Parse(msg.Data!).RootElement.Clone());
            }
        }, cts.Token);
        var manager = new DriverManager(new ShellDriver(name, [type], TimeProvider.System), new DriverOptions { Name = name, Resources = [type], NatsUrl = fx.Nats.Url });
        _ = manager.RunAsync(cts.Token);
        await manager.WaitUntilReadyAsync(cts.Token);
        try
        {
            var client = new ConveyorClient(fx.Host.Http);
            var created = await client.CreateResourceAsync(new CreateResourceRequest { Name = "web", ResourceType = type, Pipeline = type, Spec = JsonSerializer.Deserialize<JsonElement>("""{"image":"x"}""") });
            var run = await client.WaitForRunAsync(created.RunId, TimeSpan.FromSeconds(30));

            Assert.Equal(RunStatus.Failed, run.Status);
            Assert.Equal(StepStatus.Succeeded, run.Steps[0].Status);
            Assert.Equal(0, run.Steps[0].Data!.Value.GetProperty("exitCode").GetInt32());
            Assert.Equal(StepStatus.Failed, run.Steps[1].Status);
            Assert.StartsWith("exit 3", run.Steps[1].Message, StringComparison.Ordinal);
            Assert.Contains("exitCode", run.Steps[1].Message, StringComparison.Ordinal); // the inputs JSON the command echoed

            await Eventually.TrueAsync(() => lines.Any(l => l.GetProperty("message").GetString() == "warning"), TimeSpan.FromSeconds(5), "stderr reaches the log");
            var ofRun = lines.Where(l => l.GetProperty("runid").GetString() == created.RunId.ToString()).Select(l => l.GetProperty("message").GetString()).ToList();
            Assert.Contains("building web", ofRun);
            Assert.Contains(ofRun, m => m!.StartsWith("$ echo building", StringComparison.Ordinal));
        }
        finally
        {
            await cts.CancelAsync();
            await manager.DisposeAsync();
            try
            {
                await listen;
            }
            catch (OperationCanceledException)
            {
            }
        }
    }

    [Fact]
    public async Task Cancelling_the_run_kills_the_running_command()
    {
        var type = EngineFixture.Unique("sh");
        var name = EngineFixture.Unique("shell");
        await fx.CreateDefinitionAsync(type);
        var marker = Path.Combine(Path.GetTempPath(), "conveyor-shell-" + Guid.NewGuid().ToString("N"));
        await fx.Host.PostJsonAsync("/pipelines", new
        {
            name = type,
            resource = type,
            steps = new[] { new { id = "slow", driver = name, @params = new { command = $"touch {marker}; sleep 30; rm {marker}" } } },
        });
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var manager = new DriverManager(new ShellDriver(name, [type], TimeProvider.System), new DriverOptions { Name = name, Resources = [type], NatsUrl = fx.Nats.Url });
        _ = manager.RunAsync(cts.Token);
        await manager.WaitUntilReadyAsync(cts.Token);
        try
        {
            var client = new ConveyorClient(fx.Host.Http);
            var created = await client.CreateResourceAsync(new CreateResourceRequest { Name = "web", ResourceType = type, Pipeline = type, Spec = JsonSerializer.Deserialize<JsonElement>("""{"image":"x"}""") });
            await Eventually.TrueAsync(() => File.Exists(marker), TimeSpan.FromSeconds(15), "the command runs");

            await client.CancelRunAsync(created.RunId, "stop it");

            await Eventually.TrueAsync(() => manager.InFlightCount == 0, TimeSpan.FromSeconds(5), "the reconcile ends once its process is killed");
            Assert.True(File.Exists(marker), "the command was killed before it could finish and remove its marker");
        }
        finally
        {
            File.Delete(marker);
            await cts.CancelAsync();
            await manager.DisposeAsync();
        }
    }
}
