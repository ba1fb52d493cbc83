using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Conveyor.Contracts;
using Conveyor.Driver.Sdk;
using Conveyor.Client;
using NATS.Client.Core;

namespace Conveyor.Bench;

/// <summary>
/// The system under test: the real <c>conveyor-silo</c> as its own process (single node: it supervises its own
/// nats-server and redis-server in a temporary directory, on free ports), N no-op driver processes on the SDK, and
/// this process's HTTP client, NATS connection and <see cref="RunTracker"/>.
/// </summary>
internal sealed class EngineUnderTest : IAsyncDisposable
{
    public const string ResourceType = "bench";
    public const string DriverName = "noop";

    private readonly string _data;
    private readonly List<ChildProcess> _drivers = [];
    private int _resources;

    private EngineUnderTest(ChildProcess silo, string data, string natsUrl, HttpClient http, NatsConnection nats)
    {
        Silo = silo;
        _data = data;
        NatsUrl = natsUrl;
        Http = http;
        Client = new ConveyorClient(http);
        Nats = nats;
        Tracker = new RunTracker(nats, Client);
    }

    public ChildProcess Silo { get; }

    public string NatsUrl { get; }

    public HttpClient Http { get; }

    public ConveyorClient Client { get; }

    public NatsConnection Nats { get; }

    public RunTracker Tracker { get; }

    public static async Task<EngineUnderTest> StartAsync(BenchSettings settings, TextWriter log)
    {
        var driverProcesses = settings.Drivers;
        var data = Directory.CreateTempSubdirectory("conveyor-bench-").FullName;
        var httpPort = FreePort();
        var natsPort = FreePort();
        var siloAssembly = ChildProcess.BuiltAssembly("SiloAssembly", "CONVEYOR_BENCH_SILO");
        var silo = ChildProcess.Start(
            "conveyor-silo",
            siloAssembly,
            [
                $"--Urls=http://127.0.0.1:{httpPort}",
                $"--Conveyor:DataDirectory={data}",
                $"--Conveyor:LocalNatsPort={natsPort}",
                $"--Conveyor:SiloPort={FreePort()}",
                $"--Conveyor:GatewayPort={FreePort()}",
                // Per-step Information logs to a console would measure the console; production sets its level too.
                "--Logging:LogLevel:Default=Warning",
                "--Logging:LogLevel:Orleans.Runtime.Silo=Warning",
                .. settings.SiloSettings.Select(s => "--" + s),
            ],
            environment: settings.SiloEnvironment);
        var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 256, PooledConnectionLifetime = Timeout.InfiniteTimeSpan })
        {
            BaseAddress = new Uri($"http://127.0.0.1:{httpPort}"),
            Timeout = TimeSpan.FromSeconds(120),
        };
        try
        {
            await WaitReadyAsync(http, silo);
            var natsUrl = $"nats://127.0.0.1:{natsPort}";
            var nats = new NatsConnection(new NatsOpts { Url = natsUrl, Name = "conveyor-bench" });
            await nats.ConnectAsync();
            var engine = new EngineUnderTest(silo, data, natsUrl, http, nats);
            await engine.Tracker.StartAsync();
            await engine.Client.CreateResourceDefinitionAsync(new ResourceDefinition { Name = ResourceType, Schema = JsonSerializer.Deserialize<JsonElement>("{}") });
            var driverAssembly = ChildProcess.BuiltAssembly("DriverAssembly", "CONVEYOR_BENCH_DRIVER");
            for (var i = 0; i < driverProcesses; i++)
            {
                var driver = ChildProcess.Start(
                    $"driver-{i}",
                    driverAssembly,
                    ["driver", "--nats", natsUrl, "--name", DriverName, "--resource", ResourceType, "--concurrency", "256"],
                    readyLine: "ready");
                engine._drivers.Add(driver);
                await driver.WaitReadyAsync(TimeSpan.FromSeconds(60));
            }

            await log.WriteLineAsync($"engine: silo pid {silo.Id} on {http.BaseAddress}, NATS {natsUrl}, {driverProcesses} driver process(es)");
            return engine;
        }
        catch
        {
            http.Dispose();
            await silo.DisposeAsync();
            Directory.Delete(data, recursive: true);
            throw;
        }
    }

    /// <summary>Bytes the silo has allocated since it started, from the runtime meter on its <c>/metrics</c>; NaN when absent.</summary>
    public async Task<double> AllocatedBytesAsync()
    {
        var text = await Http.GetStringAsync("/metrics");
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith("dotnet_gc_heap_total_allocated_bytes_total", StringComparison.Ordinal)
                && double.TryParse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var value))
            {
                return value;
            }
        }

        return double.NaN;
    }

    /// <summary>
    /// CPU time so far of every process on the machine's side of a step: the silo, its nats-server and redis-server,
    /// the driver processes and this tool (which triggers runs over HTTP and watches their results).
    /// </summary>
    public Dictionary<string, TimeSpan> CpuByProcess()
    {
        var cpu = new Dictionary<string, TimeSpan>(StringComparer.Ordinal) { ["silo"] = Silo.Cpu };
        foreach (var (name, time) in Silo.ChildrenCpu())
        {
            cpu[name] = time;
        }

        cpu["drivers"] = _drivers.Aggregate(TimeSpan.Zero, (sum, d) => sum + d.Cpu);
        cpu["tool"] = CpuSplit.Self();
        return cpu;
    }

    /// <summary>Starts one run of <paramref name="pipeline"/> the way users do: a new resource that names it.</summary>
    public async Task<string> TriggerAsync(string pipeline)
    {
        var n = Interlocked.Increment(ref _resources);
        var created = await Client.CreateResourceAsync(new CreateResourceRequest
        {
            Name = $"r{n}",
            ResourceType = ResourceType,
            Pipeline = pipeline,
            Spec = EmptySpec,
        });
        return created.RunId.ToString();
    }

    public Task CreatePipelineAsync(string name, IReadOnlyList<PipelineStep> steps) =>
        Client.CreatePipelineAsync(new Pipeline { Name = name, Resource = ResourceType, Steps = steps });

    public static PipelineStep Step(string id, params string[] dependsOn) =>
        new() { Id = id, Name = id, Driver = DriverName, DependsOn = dependsOn };

    public async ValueTask DisposeAsync()
    {
        foreach (var driver in _drivers)
        {
            await driver.DisposeAsync();
        }

        await Tracker.DisposeAsync();
        await Nats.DisposeAsync();
        Http.Dispose();
        await Silo.DisposeAsync();
        try
        {
            Directory.Delete(_data, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static readonly JsonElement EmptySpec = JsonSerializer.Deserialize<JsonElement>("{}");

    private static async Task WaitReadyAsync(HttpClient http, ChildProcess silo)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
        while (DateTime.UtcNow < deadline)
        {
            if (silo.HasExited)
            {
                throw new InvalidOperationException($"conveyor-silo exited:\n{silo.Tail}");
            }

            try
            {
                using var response = await http.GetAsync(new Uri("/readyz", UriKind.Relative));
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(200);
        }

        throw new InvalidOperationException($"conveyor-silo was not ready in 90 s:\n{silo.Tail}");
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>
/// Watches driver results on <c>pipelines.driver.result</c> (a plain NATS subscription beside the engine's durable
/// consumer: it sees every result without taking any) for the receive and answer times the no-op driver reports, and
/// tells when a run has all the results it expects; only then does it ask the API whether the run has Succeeded, so
/// waiting costs about one GET per run.
/// </summary>
internal sealed class RunTracker(NatsConnection nats, ConveyorClient client) : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, Track> _runs = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stop = new();
    private Task? _loop;

    public async Task StartAsync()
    {
        var subscription = await nats.SubscribeCoreAsync<byte[]>(Subjects.DriverResult, cancellationToken: _stop.Token);
        _loop = Task.Run(async () =>
        {
            try
            {
                await foreach (var msg in subscription.Msgs.ReadAllAsync(_stop.Token))
                {
                    OnResult(msg);
                }
            }
            catch (OperationCanceledException)
            {
            }
            finally
            {
                await subscription.DisposeAsync();
            }
        });
        await nats.PingAsync();
    }

    /// <summary>Waits until <paramref name="expectedResults"/> results of the run arrived and the API shows it ended.</summary>
    public async Task<TrackedRun> WaitAsync(string runId, int expectedResults, TimeSpan timeout)
    {
        var track = _runs.GetOrAdd(runId, _ => new Track());
        lock (track)
        {
            track.Expected = expectedResults;
            if (track.Steps.Count >= expectedResults)
            {
                track.AllResults.TrySetResult();
            }
        }

        using var deadline = new CancellationTokenSource(timeout);
        try
        {
            await track.AllResults.Task.WaitAsync(deadline.Token);
            var delay = TimeSpan.FromMilliseconds(1);
            while (true)
            {
                var run = await client.GetRunAsync(Guid.Parse(runId), deadline.Token);
                if (run.Status >= RunStatus.Succeeded)
                {
                    _runs.TryRemove(runId, out _);
                    return new TrackedRun(run, track.Steps);
                }

                await Task.Delay(delay, deadline.Token);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromMilliseconds(20).Ticks));
            }
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            throw new TimeoutException($"run {runId} did not end within {timeout} ({track.Steps.Count} of {expectedResults} driver results seen)");
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_loop is not null)
        {
            await _loop;
        }

        _stop.Dispose();
    }

    private void OnResult(NatsMsg<byte[]> msg)
    {
        PipelineEvent? result;
        try
        {
            result = msg.Data is { Length: > 0 } data ? JsonSerializer.Deserialize(data, ConveyorJson.Context.PipelineEvent) : null;
        }
        catch (JsonException)
        {
            return;
        }

        if (result?.RunId is not { Length: > 0 } runId || result.DriverResult?.Data is not { ValueKind: JsonValueKind.Object } d
            || !d.TryGetProperty("recv", out var recv) || !d.TryGetProperty("done", out var done))
        {
            return;
        }

        var step = msg.Headers is { } h && h.TryGetValue(Headers.StepId, out var s) ? s.ToString() : "";
        var track = _runs.GetOrAdd(runId, _ => new Track());
        lock (track)
        {
            track.Steps[step] = new StepTiming(recv.GetInt64(), done.GetInt64());
            if (track.Expected > 0 && track.Steps.Count >= track.Expected)
            {
                track.AllResults.TrySetResult();
            }
        }
    }

    private sealed class Track
    {
        public int Expected;
        public Dictionary<string, StepTiming> Steps { get; } = new(StringComparer.Ordinal);
        public TaskCompletionSource AllResults { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}

/// <summary>When the driver received and answered a step, in Unix microseconds (same machine, same clock).</summary>
internal readonly record struct StepTiming(long RecvMicros, long DoneMicros)
{
    public DateTimeOffset Recv => new(DateTime.UnixEpoch.Ticks + (RecvMicros * 10), TimeSpan.Zero);

    public double DriverMs => (DoneMicros - RecvMicros) / 1000.0;
}

/// <summary>A finished run and its steps' driver timings.</summary>
internal sealed record TrackedRun(RunInfo Run, IReadOnlyDictionary<string, StepTiming> Steps);
