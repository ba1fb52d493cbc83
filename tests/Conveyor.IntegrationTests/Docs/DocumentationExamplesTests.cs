using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using Conveyor.Driver.Sdk;
using Conveyor.Testing;

namespace Conveyor.IntegrationTests;

/// <summary>
/// An engine of its own for the documentation's examples (they use fixed names such as <c>app</c> and <c>ship</c>),
/// with drivers named <c>build</c>, <c>test</c> and <c>deploy</c> serving the resource types the examples use.
/// </summary>
public sealed class DocsEngineFixture : IAsyncLifetime
{
    private readonly CancellationTokenSource _stop = new();
    private readonly List<DriverManager> _drivers = [];

    /// <summary>The bootstrap admin key the docs' API-key examples start their engine with.</summary>
    public const string DocumentedBootstrapKey = "cvk_0123456789abcdef_change-me-to-something-long";

    private NatsServerProcess? _keysNats;
    private ConveyorTestHost? _withKeys;

    public EngineFixture Engine { get; } = new();

    /// <summary>
    /// A second engine with API keys required, started when a block needs it: its own NATS (two engines on one NATS
    /// would take each other's driver results), the same Redis under another service id.
    /// </summary>
    public async Task<ConveyorTestHost> WithKeysAsync()
    {
        if (_withKeys is null)
        {
            _keysNats = await NatsServerProcess.StartNewAsync();
            _withKeys = await ConveyorTestHost.StartAsync(
                _keysNats.Url,
                Engine.Redis.ConnectionString,
                Engine.ServiceId + "-keys",
                new Dictionary<string, string?> { ["Conveyor:Auth:Enabled"] = "true", ["Conveyor:Auth:BootstrapKey"] = DocumentedBootstrapKey });
        }

        return _withKeys;
    }

    public async Task InitializeAsync()
    {
        await Engine.InitializeAsync();
        foreach (var name in new[] { "build", "test", "deploy" })
        {
            var manager = new DriverManager(
                new DoneDriver(name),
                new DriverOptions { Name = name, Resources = DoneDriver.Types, NatsUrl = Engine.Nats.Url, ShutdownGracePeriod = TimeSpan.FromSeconds(2) });
            _ = manager.RunAsync(_stop.Token);
            await manager.WaitUntilReadyAsync(_stop.Token);
            _drivers.Add(manager);
        }
    }

    public async Task DisposeAsync()
    {
        await _stop.CancelAsync();
        foreach (var driver in _drivers)
        {
            await driver.DisposeAsync();
        }

        await Disposal.InOrderAsync(_withKeys, _keysNats);

        await Engine.DisposeAsync();
        _stop.Dispose();
    }

    /// <summary>What the sample EchoDriver does, in-process: log a line, succeed.</summary>
    private sealed class DoneDriver(string name) : IDriver
    {
        public static readonly string[] Types = ["app", "site"];

        public string Name => name;

        public IReadOnlyCollection<string> Resources => Types;

        public async Task<DriverResult> ReconcileAsync(DriverEvent driverEvent, DriverContext context, CancellationToken cancellationToken)
        {
            await context.Logger.LogAsync($"{name}: step {driverEvent.StepId} of {driverEvent.Resource.Name}", cancellationToken: cancellationToken);
            return DriverResult.Ok($"{name} done");
        }
    }
}

/// <summary>
/// Runs every shell block of the README and of docs/ marked <c>&lt;!-- doc-test: run --&gt;</c> with bash against a
/// real engine, as written but for the server's address; and checks that every route the docs name exists.
/// </summary>
public sealed partial class DocumentationExamplesTests(DocsEngineFixture fx) : IClassFixture<DocsEngineFixture>
{
    public static TheoryData<string, int> RunnableBlocks()
    {
        var data = new TheoryData<string, int>();
        foreach (var block in MarkdownDocs.Files.SelectMany(MarkdownDocs.Blocks).Where(b => b.Runs))
        {
            data.Add(block.File, block.Line);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(RunnableBlocks))]
    public async Task A_runnable_example_runs_as_written_against_a_real_engine(string file, int line)
    {
        var block = MarkdownDocs.Blocks(file).Single(b => b.Line == line);
        var address = block.Marker == "run-with-keys" ? (await fx.WithKeysAsync()).Address : fx.Engine.Host.Address;
        var hostPort = $"{address.Host}:{address.Port}";
        var script = block.Text.Replace("localhost:8080", hostPort, StringComparison.Ordinal).Replace("127.0.0.1:8080", hostPort, StringComparison.Ordinal);

        var dir = Directory.CreateTempSubdirectory("conveyor-doc-").FullName;
        try
        {
            var bin = Path.Combine(dir, "bin");
            Directory.CreateDirectory(bin);
            var shim = Path.Combine(bin, "conveyor");
            await File.WriteAllTextAsync(shim, $"#!/bin/sh\nexec dotnet \"{Path.Combine(AppContext.BaseDirectory, "conveyor.dll")}\" \"$@\"\n");
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(shim, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }

            var start = new ProcessStartInfo("bash")
            {
                WorkingDirectory = dir,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                Environment =
                {
                    ["PATH"] = bin + ":" + Environment.GetEnvironmentVariable("PATH"),
                    ["HOME"] = dir,
                    ["CONVEYOR_URL"] = address.ToString(),
                },
            };
            start.ArgumentList.Add("-c");
            // An HTTP error fails the example, as a non-zero exit of any command does.
            start.ArgumentList.Add("set -euo pipefail\ncurl() { command curl --fail-with-body \"$@\"; }\n" + script);
            using var bash = Process.Start(start)!;
            var output = bash.StandardOutput.ReadToEndAsync();
            var error = bash.StandardError.ReadToEndAsync();
            try
            {
                await bash.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(3));
            }
            catch (TimeoutException)
            {
                bash.Kill(entireProcessTree: true);
                throw;
            }

            Assert.True(bash.ExitCode == 0, $"{block} exited {bash.ExitCode}\n--- stdout\n{await output}\n--- stderr\n{await error}");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task Every_route_the_docs_name_exists_in_the_openapi_document()
    {
        var document = await fx.Engine.Host.GetJsonAsync("/openapi/conveyor.json");
        // Served outside the OpenAPI document: the document itself, the Prometheus scrape and the rendered reference
        // (the last two behind settings).
        var routes = new HashSet<string>(["GET /openapi/conveyor.json", "GET /metrics", "GET /reference"], StringComparer.Ordinal);
        foreach (var path in document.GetProperty("paths").EnumerateObject())
        {
            foreach (var method in path.Value.EnumerateObject())
            {
                routes.Add(method.Name.ToUpperInvariant() + " " + Normalize(path.Name));
            }
        }

        var missing = new List<string>();
        foreach (var file in MarkdownDocs.Files)
        {
            var lines = MarkdownDocs.Read(file).Split('\n');
            for (var i = 0; i < lines.Length; i++)
            {
                foreach (Match m in RouteMention().Matches(lines[i]))
                {
                    var route = m.Groups[1].Value + " " + Normalize(m.Groups[2].Value);
                    if (!routes.Contains(route) && !routes.Contains(m.Groups[1].Value + " " + Normalize("/namespaces/{ns}" + m.Groups[2].Value)))
                    {
                        missing.Add($"{file}:{i + 1}: {route}");
                    }
                }
            }
        }

        Assert.True(missing.Count == 0, "routes the docs name that the API does not have:\n" + string.Join('\n', missing));
    }

    /// <summary>Parameters as <c>{}</c>, no query, no trailing slash.</summary>
    private static string Normalize(string path) => ParameterPattern().Replace(path.Split('?')[0], "{}").TrimEnd('/') is { Length: > 0 } p ? p : "/";

    /// <summary>A method and an absolute path in backticks, e.g. <c>`GET /runs/{id}`</c> (paths with … are left out).</summary>
    [GeneratedRegex(@"`(GET|POST|PUT|DELETE|PATCH) (/[A-Za-z0-9_{}./-]*)(?:[?][^`]*)?`")]
    private static partial Regex RouteMention();

    [GeneratedRegex(@"\{[^}]*\}")]
    private static partial Regex ParameterPattern();
}
