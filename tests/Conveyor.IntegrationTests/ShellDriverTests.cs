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
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
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
            var run = await client.WaitForRunAsync(created.RunId, Deadlines.Event);

            Assert.Equal(RunStatus.Failed, run.Status);
            Assert.Equal(StepStatus.Succeeded, run.Steps[0].Status);
            Assert.Equal(0, run.Steps[0].Data!.Value.GetProperty("exitCode").GetInt32());
            Assert.Equal(StepStatus.Failed, run.Steps[1].Status);
            Assert.StartsWith("exit 3", run.Steps[1].Message, StringComparison.Ordinal);
            Assert.Contains("exitCode", run.Steps[1].Message, StringComparison.Ordinal); // the inputs JSON the command echoed

            await Eventually.TrueAsync(() => lines.Any(l => l.GetProperty("message").GetString() == "warning"), Deadlines.Event, "stderr reaches the log");
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

    /// <summary>
    /// The command records its shell's and its <c>sleep</c>'s process ids, sleeps ten minutes, then would write a
    /// completion marker. After the cancel the reconcile must end long before the sleep could (the deadline is a tenth
    /// of it), both processes must be gone — so nothing is left that could still write the marker — and the marker
    /// must not exist.
    /// </summary>
    [Fact]
    public async Task Cancelling_the_run_kills_the_running_command_before_it_completes()
    {
        var type = EngineFixture.Unique("sh");
        var name = EngineFixture.Unique("shell");
        await fx.CreateDefinitionAsync(type);
        var dir = Directory.CreateTempSubdirectory("conveyor-shell-cancel-").FullName;
        var (shellPid, sleepPid, done) = (Path.Combine(dir, "shell.pid"), Path.Combine(dir, "sleep.pid"), Path.Combine(dir, "done"));
        await fx.Host.PostJsonAsync("/pipelines", new
        {
            name = type,
            resource = type,
            steps = new[] { new { id = "slow", driver = name, @params = new { command = $"echo $$ > {shellPid}; sleep 600 & echo $! > {sleepPid}; wait $!; touch {done}" } } },
        });
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var manager = new DriverManager(new ShellDriver(name, [type], TimeProvider.System), new DriverOptions { Name = name, Resources = [type], NatsUrl = fx.Nats.Url });
        _ = manager.RunAsync(cts.Token);
        await manager.WaitUntilReadyAsync(cts.Token);
        try
        {
            var client = new ConveyorClient(fx.Host.Http);
            var created = await client.CreateResourceAsync(new CreateResourceRequest { Name = "web", ResourceType = type, Pipeline = type, Spec = JsonSerializer.Deserialize<JsonElement>("""{"image":"x"}""") });
            var processes = new List<(int Pid, string Start)>();
            await Eventually.TrueAsync(
                () =>
                {
                    processes.Clear();
                    foreach (var file in new[] { shellPid, sleepPid })
                    {
                        if (!File.Exists(file) || !int.TryParse(File.ReadAllText(file).Trim(), out var pid) || StartTime(pid) is not { } start)
                        {
                            return false;
                        }

                        processes.Add((pid, start));
                    }

                    return true;
                },
                Deadlines.Event,
                "the command runs and records its process ids");

            await client.CancelRunAsync(created.RunId, "stop it");

            await Eventually.TrueAsync(() => manager.InFlightCount == 0, Deadlines.Event, "the reconcile ends once its process is killed, not after the 600 s sleep");
            var run = await client.WaitForRunAsync(created.RunId, Deadlines.Event);
            Assert.Equal(RunStatus.Cancelled, run.Status);
            Assert.All(processes, p => Assert.True(StartTime(p.Pid) != p.Start, $"process {p.Pid} still runs after the cancel"));
            Assert.False(File.Exists(done), "the command completed although its run was cancelled");
        }
        finally
        {
            await cts.CancelAsync();
            await manager.DisposeAsync();
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>
    /// The start time (clock ticks since boot) of a live process, or null when it has exited (a zombie counts as
    /// exited); comparing it tells a process from a later one that got the same id.
    /// </summary>
    private static string? StartTime(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // "pid (comm) state ppid …": comm may hold spaces, so the fields are counted after its closing parenthesis.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return fields[0] is "Z" or "X" ? null : fields[19];
        }
        catch (IOException)
        {
            return null;
        }
    }
}
