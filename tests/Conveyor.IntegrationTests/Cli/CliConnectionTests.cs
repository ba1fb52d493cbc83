using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Conveyor.Cli;
using Conveyor.Client;
using Conveyor.Driver.Sdk;
using Conveyor.Testing;

namespace Conveyor.IntegrationTests;

/// <summary>
/// How the CLI connects and stays connected: request timeouts, a followed log that breaks and is resumed (or cannot
/// be), contexts from the config file, and tab completion.
/// </summary>
[Collection(EngineCollection.Name)]
public sealed class CliConnectionTests(EngineFixture fx)
{
    [Fact]
    public async Task A_server_that_never_answers_ends_the_command_with_exit_code_4_after_the_timeout()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var accepted = new List<Socket>();
        var accepting = Task.Run(async () =>
        {
            // Accept and say nothing: a hung server.
            while (true)
            {
                accepted.Add(await listener.AcceptSocketAsync());
            }
        });
        var url = $"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}";
        using var cli = new CliRunner();

        var byFlag = await cli.RunAsync("get", "pipelines", "--server", url, "--timeout", "1s");
        Assert.Equal(ExitCodes.Unreachable, byFlag.Code);
        Assert.Equal($"error: Conveyor at {url}/ did not answer within 1s (--timeout)\n", byFlag.Err);

        var byEnvironment = await cli.With("CONVEYOR_URL", url).With("CONVEYOR_TIMEOUT", "500ms").RunAsync("runs", "list");
        Assert.Equal(ExitCodes.Unreachable, byEnvironment.Code);
        Assert.Contains("did not answer within 500ms", byEnvironment.Err, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Usage, (await cli.RunAsync("get", "pipelines", "--server", url, "--timeout", "soon")).Code);
        listener.Stop();
        accepted.ForEach(s => s.Dispose());
    }

    [Fact]
    public async Task Logs_follow_resumes_a_stream_the_server_closed_from_the_last_line_it_printed()
    {
        var (runId, driver) = await StartGatedRunAsync();
        using var handler = new FaultyHttpHandler(n => n == 1 ? StreamFault.EndAfterFirstEvent : StreamFault.None);
        using var cli = new CliRunner(fx.Host.Address) { Handler = handler };

        var follow = cli.RunAsync("logs", "-f", runId);
        await Eventually.TrueAsync(() => handler.Streams >= 2, Deadlines.Event, "the follow should reconnect after the first stream ended");
        driver.Release.TrySetResult();
        var (code, output, error) = await follow.WaitAsync(Deadlines.Event);

        Assert.True(code == ExitCodes.Ok, error);
        var printed = output.Trim().Split('\n').Select(l => l.Split(' ', 2)[1]).ToArray();
        Assert.Equal([$"[{driver.Name}/build] started build", $"[{driver.Name}/build] finishing build"], printed);
        var streams = handler.Requests.Where(r => r.Path.EndsWith("/logs/stream", StringComparison.Ordinal)).ToList();
        Assert.Null(streams[0].LastEventId);
        var firstSeq = (await new ConveyorClient(fx.Host.Http).GetRunLogsAsync(runId)).Items[0].Seq;
        Assert.Equal(firstSeq.ToString(System.Globalization.CultureInfo.InvariantCulture), streams[1].LastEventId);
    }

    [Fact]
    public async Task Logs_follow_exits_4_and_says_where_to_read_on_when_a_broken_stream_cannot_be_resumed()
    {
        var (runId, driver) = await StartGatedRunAsync();
        using var handler = new FaultyHttpHandler(n => n == 1 ? StreamFault.EndAfterFirstEvent : StreamFault.Refuse);
        using var cli = new CliRunner(fx.Host.Address) { Handler = handler };

        var (code, output, error) = await cli.RunAsync("logs", "-f", runId);
        driver.Release.TrySetResult();

        Assert.Equal(ExitCodes.Unreachable, code);
        Assert.Equal($"[{driver.Name}/build] started build", Assert.Single(output.Trim().Split('\n')).Split(' ', 2)[1]);
        var seq = (await new ConveyorClient(fx.Host.Http).GetRunLogsAsync(runId)).Items[0].Seq;
        Assert.True(error.StartsWith($"error: The log stream of run {runId} ended after line {seq} before the run did (the server closed the stream)", StringComparison.Ordinal), error);
        Assert.EndsWith($"Read on with: conveyor logs -f {runId} --after {seq}\n", error, StringComparison.Ordinal);
        Assert.Equal(6, handler.Streams); // the first stream and five reconnects

        // Reading on from there prints the rest, once.
        await fx.Host.WaitForRunAsync(runId, Deadlines.Event);
        using var plain = new CliRunner(fx.Host.Address);
        var rest = await plain.RunAsync("logs", "-f", runId, "--after", seq.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal($"[{driver.Name}/build] finishing build", Assert.Single(rest.Out.Trim().Split('\n')).Split(' ', 2)[1]);
    }

    [Fact]
    public async Task The_client_resumes_a_followed_log_that_went_silent_for_longer_than_its_idle_timeout()
    {
        var (runId, driver) = await StartGatedRunAsync();
        using var handler = new FaultyHttpHandler(n => n == 1 ? StreamFault.StallAfterFirstEvent : StreamFault.None);
        using var http = new HttpClient(handler) { BaseAddress = fx.Host.Address };
        // Three seconds without an entry count as a dead stream here, so reconnects may be many: allow them all. The
        // timeout stays above the second of quiet the server waits after a run ends before it sends the end event.
        var client = new ConveyorClient(http) { StreamIdleTimeout = TimeSpan.FromSeconds(3), StreamResumeAttempts = int.MaxValue };
        using var cts = new CancellationTokenSource(Deadlines.Event);

        var lines = new List<string>();
        var follow = Task.Run(async () =>
        {
            await foreach (var line in client.FollowRunLogsAsync(runId, cancellationToken: cts.Token))
            {
                lines.Add(line.Message);
            }
        });
        await Eventually.TrueAsync(() => handler.Streams >= 2, Deadlines.Event, "the silent stream should be given up and resumed");
        driver.Release.TrySetResult();
        await follow.WaitAsync(Deadlines.Event);

        Assert.Equal(["started build", "finishing build"], lines);
    }

    [Fact]
    public async Task Contexts_from_the_config_file_give_server_namespace_key_and_timeout_and_flags_override_them()
    {
        var ns = EngineFixture.Unique("clictx");
        await fx.Host.PostJsonAsync("/namespaces", new { name = ns });
        using var handler = new FaultyHttpHandler(_ => StreamFault.None);
        using var cli = new CliRunner { Handler = handler };
        var config = Path.Combine(cli.Home, ".config", "conveyor");
        Directory.CreateDirectory(config);
        await File.WriteAllTextAsync(Path.Combine(config, "local.key"), "cvk_0123456789abcdef_from-the-key-file\n");

        var set = await cli.RunAsync("config", "set-context", "local", "--server", fx.Host.Address.ToString(), "--namespace", ns, "--key-file", "local.key", "--timeout", "20s");
        Assert.Equal(("Context \"local\" created (current).\n", ""), (set.Out, set.Err));
        Assert.Equal("Context \"dead\" created.\n", (await cli.RunAsync("config", "set-context", "dead", "--server", $"http://127.0.0.1:{ServerProcess.FindFreePort()}")).Out);
        var contexts = (await cli.RunAsync("config", "get-contexts")).Out.Split('\n');
        Assert.Equal(["CURRENT", "NAME", "SERVER", "NAMESPACE", "KEY", "FILE", "TIMEOUT"], contexts[0].Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(["dead", "http://127.0.0.1:"], contexts[1].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(c => c.StartsWith("http", StringComparison.Ordinal) ? c[..17] : c));
        Assert.Equal(["*", "local", fx.Host.Address.ToString(), ns, "local.key", "20s"], contexts[2].Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal("local\n", (await cli.RunAsync("config", "current-context")).Out);

        // The current context: its server, its namespace, the key from its file.
        var listed = await cli.RunAsync("get", "secrets");
        Assert.True(listed.Code == 0, listed.Err);
        var request = handler.Requests.Last();
        Assert.Equal($"/namespaces/{ns}/secrets", request.Path);
        Assert.Equal("Bearer cvk_0123456789abcdef_from-the-key-file", request.Authorization);

        // Another context by flag or variable; flags and variables over the context's settings.
        Assert.Equal(ExitCodes.Unreachable, (await cli.RunAsync("get", "secrets", "--context", "dead")).Code);
        Assert.Equal(ExitCodes.Unreachable, (await cli.With("CONVEYOR_CONTEXT", "dead").RunAsync("get", "secrets")).Code);
        Assert.Equal(0, (await cli.RunAsync("get", "secrets", "--context", "dead", "--server", fx.Host.Address.ToString())).Code);
        Assert.Equal(0, (await cli.RunAsync("get", "secrets", "--context", "local", "-n", "default", "--api-key", "cvk_0123456789abcdef_flag")).Code);
        Assert.Equal(("/secrets", "Bearer cvk_0123456789abcdef_flag"), (handler.Requests.Last().Path, handler.Requests.Last().Authorization));
        var missing = await cli.RunAsync("get", "secrets", "--context", "nope");
        Assert.Equal(ExitCodes.Usage, missing.Code);
        Assert.Contains("no context 'nope' in ", missing.Err, StringComparison.Ordinal);

        Assert.Equal("Switched to context \"dead\".\n", (await cli.With("CONVEYOR_CONTEXT", "").RunAsync("config", "use-context", "dead")).Out);
        Assert.Equal(ExitCodes.Unreachable, (await cli.RunAsync("get", "secrets")).Code);
        Assert.Equal("Deleted context \"dead\".\n", (await cli.RunAsync("config", "delete-context", "dead")).Out);
        Assert.Equal(ExitCodes.Usage, (await cli.RunAsync("config", "current-context")).Code);

        // CONVEYOR_CONFIG names another file; a file with an unknown setting is refused with its path.
        var other = Path.Combine(cli.Home, "elsewhere.yaml");
        await File.WriteAllTextAsync(other, "current-context: x\ncontexts:\n  x:\n    server: http://127.0.0.1:1\n    colour: blue\n");
        var broken = await cli.With("CONVEYOR_CONFIG", other).RunAsync("get", "pipelines");
        Assert.Equal((ExitCodes.Usage, $"error: {other}: context 'x': unknown setting 'colour' (expected server, namespace, key-file, timeout)\n"), (broken.Code, broken.Err));
    }

    [Fact]
    public async Task Completion_scripts_ask_conveyor_what_comes_next_and_bash_completes_commands_and_values()
    {
        using var cli = new CliRunner();
        foreach (var shell in new[] { "bash", "zsh", "fish", "pwsh" })
        {
            var script = await cli.RunAsync("completion", shell);
            Assert.Equal(0, script.Code);
            Assert.Contains("[suggest:", script.Out, StringComparison.Ordinal);
        }

        Assert.Equal(ExitCodes.Usage, (await cli.RunAsync("completion", "tcsh")).Code);
        var direct = await cli.RunAsync("[suggest:13]", "conveyor get ");
        Assert.Contains("pipelines", direct.Out.Split('\n'));

        // The bash script, sourced into a real bash, with conveyor on the PATH.
        var bin = Path.Combine(cli.Home, "bin");
        Directory.CreateDirectory(bin);
        var shim = Path.Combine(bin, "conveyor");
        await File.WriteAllTextAsync(shim, $"#!/bin/sh\nexec dotnet \"{Path.Combine(AppContext.BaseDirectory, "conveyor.dll")}\" \"$@\"\n");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(shim, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        Assert.Equal(["get"], await BashCompleteAsync(bin, "conveyor ge"));
        Assert.Equal(["json", "name", "wide", "yaml"], await BashCompleteAsync(bin, "conveyor get pipelines -o "));
        Assert.Contains("--dry-run", await BashCompleteAsync(bin, "conveyor apply --d"));
    }

    private static async Task<string[]> BashCompleteAsync(string bin, string line)
    {
        var start = new ProcessStartInfo("bash")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            Environment = { ["PATH"] = bin + ":" + Environment.GetEnvironmentVariable("PATH"), ["HOME"] = Path.GetDirectoryName(bin)!, ["LINE"] = line },
        };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add("""source <(conveyor completion bash); COMP_LINE="$LINE"; COMP_POINT=${#LINE}; _conveyor_complete; printf '%s\n' "${COMPREPLY[@]}" """);
        using var bash = Process.Start(start)!;
        var output = await bash.StandardOutput.ReadToEndAsync();
        await bash.WaitForExitAsync().WaitAsync(Deadlines.Event);
        Assert.True(bash.ExitCode == 0, await bash.StandardError.ReadToEndAsync());
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    /// <summary>A run whose one step logs "started build", waits for <see cref="GatedDriver.Release"/>, logs "finishing build".</summary>
    private async Task<(string RunId, GatedDriver Driver)> StartGatedRunAsync()
    {
        var type = EngineFixture.Unique("clistream");
        var driver = new GatedDriver(EngineFixture.Unique("drv"), type);
        var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var manager = new DriverManager(driver, new DriverOptions { Name = driver.Name, Resources = [type], NatsUrl = fx.Nats.Url, ShutdownGracePeriod = TimeSpan.FromSeconds(2) });
        _ = manager.RunAsync(cts.Token);
        await manager.WaitUntilReadyAsync(cts.Token);
        await fx.CreateDefinitionAsync(type);
        await fx.Host.PostJsonAsync("/pipelines", new { name = type, resource = type, steps = new[] { new { id = "build", driver = driver.Name } } });
        var created = await fx.Host.PostJsonAsync("/resources", new { name = "web", resource = type, pipeline = type, spec = new { image = "x" } });
        await driver.Entered.Task.WaitAsync(Deadlines.Event);
        var runId = created.GetProperty("runid").GetString()!;
        await Eventually.TrueAsync(
            async () => (await new ConveyorClient(fx.Host.Http).GetRunLogsAsync(runId)).Items.Count == 1, Deadlines.Event, "the first line should be stored");
        return (runId, driver);
    }
}
