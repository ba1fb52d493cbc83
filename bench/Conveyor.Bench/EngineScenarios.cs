using System.Diagnostics;
using Conveyor.Client;

namespace Conveyor.Bench;

/// <summary>Sizes of one pass of the engine scenarios.</summary>
internal sealed record BenchSettings
{
    /// <summary>Runs per concurrency level in B1 (and in its open-loop pass).</summary>
    public int Runs { get; init; } = 1000;

    /// <summary>Nodes of the large B2 DAGs; each shape also runs at a quarter of it, to show how cost grows.</summary>
    public int Nodes { get; init; } = 1000;

    /// <summary>Measured seconds of B3 (after a warm-up of a fifth of it).</summary>
    public int Seconds { get; init; } = 15;

    /// <summary>10-step runs in flight in B3.</summary>
    public int InFlight { get; init; } = 64;

    /// <summary>No-op driver processes (instances of one driver sharing its consumer).</summary>
    public int Drivers { get; init; } = 2;

    /// <summary>Round trips per concurrency level of the floor.</summary>
    public int FloorMessages { get; init; } = 5000;

    /// <summary>Extra configuration for the silo (<c>--silo Key=Value</c>), e.g. to compare a setting's cost.</summary>
    public IReadOnlyList<string> SiloSettings { get; init; } = [];

    /// <summary>Environment variables for the silo process only (<c>--silo-env NAME=VALUE</c>), e.g. runtime knobs.</summary>
    public IReadOnlyList<string> SiloEnvironment { get; init; } = [];

    /// <summary>B1 concurrency levels (<c>--levels 1,16</c>); the open loop runs at half the best of them.</summary>
    public IReadOnlyList<int> Levels { get; init; } = [1, 16, 128];

    /// <summary>When set (<c>--hops PATH</c>), every B1 run's per-hop timestamps are written there as CSV.</summary>
    public string? HopsPath { get; init; }

    public static BenchSettings Smoke { get; } = new() { Runs = 10, Nodes = 20, Seconds = 1, InFlight = 4, Drivers = 1, FloorMessages = 50 };
}

/// <summary>B1 dispatch, B2 DAG shapes, B3 saturation and the footprint, against a running <see cref="EngineUnderTest"/>.</summary>
internal sealed class EngineScenarios(EngineUnderTest engine, BenchSettings settings, Metrics metrics, TextWriter log)
{
    private static readonly TimeSpan RunTimeout = TimeSpan.FromSeconds(120);
    private readonly HopLog? _hops = settings.HopsPath is { } path ? new HopLog(path) : null;
    private bool _pipelinesReady;

    /// <summary>Silo RSS once started and warmed up, with nothing running.</summary>
    public async Task IdleFootprintAsync()
    {
        await EnsurePipelinesAsync();
        await WarmUpAsync();
        GC.KeepAlive(engine);
        await Task.Delay(TimeSpan.FromSeconds(2));
        metrics.Add("footprint.idle_rss_mb", engine.Silo.Rss / 1048576.0);
    }

    /// <summary>B1: 1-step runs at 1, 16 and 128 in flight (closed loop), then open-loop arrivals at half the best rate.</summary>
    /// <param name="openLoop">Whether the open-loop arrivals run too (the peers compare the closed loop only).</param>
    public async Task DispatchAsync(bool openLoop = true)
    {
        await EnsurePipelinesAsync();
        await WarmUpAsync();
        var best = 0.0;
        foreach (var c in settings.Levels)
        {
            var driver = new LatencyHistogram();
            var succeeded = new LatencyHistogram();
            var cpuStart = engine.Silo.Cpu;
            var clock = Stopwatch.StartNew();
            var next = 0;
            await Task.WhenAll(Enumerable.Range(0, Math.Min(c, settings.Runs)).Select(async _ =>
            {
                while (Interlocked.Increment(ref next) <= settings.Runs)
                {
                    var triggered = DateTimeOffset.UtcNow;
                    await OneRunAsync("b1", 1, triggered, driver, succeeded, $"c{c}");
                }
            }));
            var rate = settings.Runs / clock.Elapsed.TotalSeconds;
            // The silo's CPU per run at each level: at one in flight most of it is thread-pool workers waiting for the
            // next hop, not work, which is what makes a run cost several times more there than under load.
            var cpuPerRun = (engine.Silo.Cpu - cpuStart).TotalMilliseconds / settings.Runs;
            best = Math.Max(best, rate);
            metrics.Add($"b1.closed.c{c}.runs_per_s", rate);
            metrics.Add($"b1.closed.c{c}.silo_cpu_ms_per_run", cpuPerRun);
            AddLatencies($"b1.closed.c{c}", driver, succeeded);
            await log.WriteLineAsync($"  B1 closed loop, {c} in flight: {rate:F0} runs/s, trigger→driver p99 {driver.PercentileMs(0.99):F1} ms, silo CPU {cpuPerRun:F2} ms per run");
        }

        if (!openLoop)
        {
            _hops?.Flush();
            return;
        }

        // Open loop: arrivals on a fixed schedule whatever the engine does; latency counts from the scheduled time, so
        // a stall shows up in the percentiles instead of slowing the arrivals down (no coordinated omission).
        var offered = best / 2;
        metrics.Add("b1.open.offered_runs_per_s", offered);
        var openDriver = new LatencyHistogram();
        var openSucceeded = new LatencyHistogram();
        var start = DateTimeOffset.UtcNow.AddMilliseconds(20);
        var runs = new List<Task>(settings.Runs);
        var openClock = Stopwatch.StartNew();
        for (var i = 0; i < settings.Runs; i++)
        {
            var due = start + TimeSpan.FromSeconds(i / offered);
            var wait = due - DateTimeOffset.UtcNow;
            if (wait > TimeSpan.FromMilliseconds(1))
            {
                await Task.Delay(wait);
            }

            runs.Add(Task.Run(() => OneRunAsync("b1", 1, due, openDriver, openSucceeded, "open")));
        }

        await Task.WhenAll(runs);
        metrics.Add("b1.open.runs_per_s", settings.Runs / openClock.Elapsed.TotalSeconds);
        AddLatencies("b1.open", openDriver, openSucceeded);
        await log.WriteLineAsync($"  B1 open loop at {offered:F0} runs/s: trigger→driver p99 {openDriver.PercentileMs(0.99):F1} ms");
        _hops?.Flush();
    }

    /// <summary>B2: one run per DAG shape and size; makespan and scheduling overhead per node.</summary>
    public async Task DagAsync()
    {
        await EnsurePipelinesAsync();
        await WarmUpAsync();
        var sizes = new[] { Math.Max(10, settings.Nodes / 4), settings.Nodes };
        foreach (var shape in new[] { "chain", "fanout", "diamond" })
        {
            var perNode = new double[sizes.Length];
            for (var k = 0; k < sizes.Length; k++)
            {
                var n = sizes[k];
                var steps = Shape(shape, n);
                var name = $"b2-{shape}-{n}";
                await engine.CreatePipelineAsync(name, steps);
                var runId = await engine.TriggerAsync(name);
                var done = await engine.Tracker.WaitAsync(runId, steps.Count, RunTimeout);
                EnsureSucceeded(done);
                var makespan = (done.Run.FinishedAt!.Value - done.Run.StartedAt!.Value).TotalMilliseconds;
                var driverPath = CriticalPathMs(steps, done.Steps);
                perNode[k] = (makespan - driverPath) / steps.Count;
                if (k == sizes.Length - 1)
                {
                    metrics.Add($"b2.{shape}.makespan_ms", makespan);
                    metrics.Add($"b2.{shape}.overhead_ms_per_node", perNode[k]);
                }

                await log.WriteLineAsync($"  B2 {shape} of {steps.Count}: makespan {makespan:F0} ms, driver critical path {driverPath:F1} ms, overhead {perNode[k]:F3} ms/node");
            }

            // Linear cost keeps the per-node overhead flat as the DAG grows 4×; an O(n²) scan quadruples it.
            metrics.Add($"b2.{shape}.growth_per_node_x4", perNode[^1] / perNode[0]);
        }
    }

    /// <summary>B3: 10-step chains, a fixed number in flight, for a fixed time: steps/s, RSS and CPU under load.</summary>
    public async Task SaturationAsync()
    {
        await EnsurePipelinesAsync();
        await WarmUpAsync();
        var warmUp = TimeSpan.FromSeconds(Math.Max(1, settings.Seconds / 5));
        var measured = TimeSpan.FromSeconds(settings.Seconds);
        long completed = 0;
        var measuring = false;
        var stopAt = DateTimeOffset.MaxValue;
        var rss = new List<double>();
        using var sampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                if (Volatile.Read(ref measuring))
                {
                    lock (rss)
                    {
                        rss.Add(engine.Silo.Rss / 1048576.0);
                    }
                }

                await Task.Delay(250, CancellationToken.None);
            }
        });

        var begin = DateTimeOffset.UtcNow;
        var measureFrom = begin + warmUp;
        stopAt = measureFrom + measured;
        Dictionary<string, TimeSpan> cpuStart = [], cpuEnd = [];
        double allocStart = double.NaN, allocEnd = double.NaN;
        var stages = new StageBreakdown();
        // Work is sampled at the window's edges, so the runs still draining after it are not charged to it.
        var starter = Task.Run(async () =>
        {
            await Task.Delay(warmUp);
            cpuStart = engine.CpuByProcess();
            allocStart = await engine.AllocatedBytesAsync();
            Volatile.Write(ref measuring, true);
            await Task.Delay(measured);
            cpuEnd = engine.CpuByProcess();
            allocEnd = await engine.AllocatedBytesAsync();
        });
        await Task.WhenAll(Enumerable.Range(0, settings.InFlight).Select(async _ =>
        {
            while (DateTimeOffset.UtcNow < stopAt)
            {
                var runId = await engine.TriggerAsync("b3");
                var done = await engine.Tracker.WaitAsync(runId, 10, RunTimeout);
                EnsureSucceeded(done);
                var finished = done.Run.FinishedAt!.Value;
                if (finished >= measureFrom && finished < stopAt)
                {
                    Interlocked.Increment(ref completed);
                    stages.Record(done);
                }
            }
        }));
        await starter;
        var cpu = cpuEnd["silo"] - cpuStart["silo"];
        Volatile.Write(ref measuring, false);
        await sampling.CancelAsync();
        await sampler;

        var steps = completed * 10;
        var stepsPerSecond = steps / measured.TotalSeconds;
        metrics.Add("b3.steps_per_s", stepsPerSecond);
        metrics.Add("b3.runs_per_s", completed / measured.TotalSeconds);
        stages.AddTo(metrics, "b3.stage");
        metrics.Add("footprint.load_rss_mb", rss.Count == 0 ? double.NaN : rss.Max());
        metrics.Add("footprint.cpu_s_per_1000_steps", steps == 0 ? double.NaN : cpu.TotalSeconds / (steps / 1000.0));
        // Allocation per step barely depends on how busy the machine is, unlike CPU time: the steadier measure of work.
        metrics.Add("footprint.alloc_mb_per_1000_steps", steps == 0 ? double.NaN : (allocEnd - allocStart) / 1048576.0 / (steps / 1000.0));
        await log.WriteLineAsync($"  B3 {settings.InFlight} ten-step runs in flight: {stepsPerSecond:F0} steps/s, silo CPU {cpu.TotalSeconds:F1} s");
        // Where the machine's CPU goes per step, process by process: what any design on this transport pays, and what
        // is the engine's own.
        await CpuSplit.AddAsync("b3.cpu_ms_per_step", cpuStart, cpuEnd, steps, measured.TotalSeconds, metrics, log);
    }

    private async Task OneRunAsync(string pipeline, int steps, DateTimeOffset triggered, LatencyHistogram driver, LatencyHistogram succeeded, string level = "")
    {
        var runId = await engine.TriggerAsync(pipeline);
        var answered = DateTimeOffset.UtcNow;
        var done = await engine.Tracker.WaitAsync(runId, steps, RunTimeout);
        EnsureSucceeded(done);
        var received = done.Steps.Values.Min(s => s.Recv);
        _hops?.Record(level, triggered, answered, done);
        lock (driver)
        {
            driver.RecordMs((received - triggered).TotalMilliseconds);
            succeeded.RecordMs((done.Run.FinishedAt!.Value - triggered).TotalMilliseconds);
        }
    }

    private void AddLatencies(string prefix, LatencyHistogram driver, LatencyHistogram succeeded)
    {
        foreach (var (q, name) in new[] { (0.50, "p50"), (0.99, "p99"), (0.999, "p999") })
        {
            metrics.Add($"{prefix}.driver_{name}_ms", driver.PercentileMs(q));
        }

        foreach (var (q, name) in new[] { (0.50, "p50"), (0.99, "p99"), (0.999, "p999") })
        {
            metrics.Add($"{prefix}.succeeded_{name}_ms", succeeded.PercentileMs(q));
        }
    }

    private async Task EnsurePipelinesAsync()
    {
        if (_pipelinesReady)
        {
            return;
        }

        await engine.CreatePipelineAsync("b1", [EngineUnderTest.Step("s0")]);
        await engine.CreatePipelineAsync("b3", Enumerable.Range(0, 10).Select(i => EngineUnderTest.Step($"s{i}", i == 0 ? [] : [$"s{i - 1}"])).ToList());
        _pipelinesReady = true;
    }

    private bool _warm;

    /// <summary>JIT, connection pools and grain activation paths are warm before anything is measured.</summary>
    private async Task WarmUpAsync()
    {
        if (_warm)
        {
            return;
        }

        var next = 0;
        var count = Math.Clamp(settings.Runs / 10, 4, 100);
        await Task.WhenAll(Enumerable.Range(0, 8).Select(async _ =>
        {
            while (Interlocked.Increment(ref next) <= count)
            {
                var runId = await engine.TriggerAsync("b3");
                EnsureSucceeded(await engine.Tracker.WaitAsync(runId, 10, RunTimeout));
            }
        }));
        _warm = true;
    }

    private static void EnsureSucceeded(TrackedRun done)
    {
        if (done.Run.Status != Conveyor.Contracts.RunStatus.Succeeded)
        {
            throw new InvalidOperationException($"run {done.Run.Id} ended {done.Run.Status}: {done.Run.Message}");
        }
    }

    /// <summary>1,000-node shapes: a chain; 999 parallel steps joined by one; 10 layers of n/10, each node on two of the layer before.</summary>
    internal static List<PipelineStep> Shape(string shape, int n)
    {
        switch (shape)
        {
            case "chain":
                return Enumerable.Range(0, n).Select(i => EngineUnderTest.Step($"s{i}", i == 0 ? [] : [$"s{i - 1}"])).ToList();
            case "fanout":
                var parallel = Enumerable.Range(0, n - 1).Select(i => EngineUnderTest.Step($"s{i}")).ToList();
                parallel.Add(EngineUnderTest.Step("join", parallel.Select(s => s.Id).ToArray()));
                return parallel;
            case "diamond":
                const int layers = 10;
                var width = Math.Max(1, n / layers);
                var steps = new List<PipelineStep>(layers * width);
                for (var l = 0; l < layers; l++)
                {
                    for (var i = 0; i < width; i++)
                    {
                        steps.Add(l == 0
                            ? EngineUnderTest.Step($"l0n{i}")
                            : EngineUnderTest.Step($"l{l}n{i}", [.. new[] { $"l{l - 1}n{i}", $"l{l - 1}n{(i + 1) % width}" }.Distinct()]));
                    }
                }

                return steps;
            default:
                throw new ArgumentOutOfRangeException(nameof(shape), shape, "chain, fanout or diamond");
        }
    }

    /// <summary>The longest path through the DAG counting only the driver's own time per step.</summary>
    private static double CriticalPathMs(List<PipelineStep> steps, IReadOnlyDictionary<string, StepTiming> timings)
    {
        // Steps are listed with every dependency before its dependents, so one pass suffices.
        var finish = new Dictionary<string, double>(StringComparer.Ordinal);
        var longest = 0.0;
        foreach (var step in steps)
        {
            var start = 0.0;
            foreach (var dep in step.DependsOn ?? [])
            {
                start = Math.Max(start, finish[dep]);
            }

            var own = timings.TryGetValue(step.Id, out var t) ? t.DriverMs : 0;
            finish[step.Id] = start + own;
            longest = Math.Max(longest, finish[step.Id]);
        }

        return longest;
    }
}

/// <summary>
/// Where a step's time goes, from the run's own timestamps and the driver's: <c>persist_publish</c> (the engine decides
/// the dispatch → stores the transition → JetStream confirms the publish), <c>deliver</c> (→ the driver receives it),
/// <c>driver</c> (its own work), <c>result</c> (the driver answers → the engine has applied the result).
/// </summary>
internal sealed class StageBreakdown
{
    private readonly LatencyHistogram _persistPublish = new();
    private readonly LatencyHistogram _deliver = new();
    private readonly LatencyHistogram _driver = new();
    private readonly LatencyHistogram _result = new();

    public void Record(TrackedRun done)
    {
        lock (this)
        {
            foreach (var step in done.Run.Steps)
            {
                if (step.Attempts is not [.., var attempt] || attempt.PublishedAt is not { } published || attempt.FinishedAt is not { } finished
                    || !done.Steps.TryGetValue(step.Id, out var timing))
                {
                    continue;
                }

                var answered = new DateTimeOffset(DateTime.UnixEpoch.Ticks + (timing.DoneMicros * 10), TimeSpan.Zero);
                _persistPublish.RecordMs((published - attempt.DispatchedAt).TotalMilliseconds);
                _deliver.RecordMs((timing.Recv - published).TotalMilliseconds);
                _driver.RecordMs(timing.DriverMs);
                _result.RecordMs((finished - answered).TotalMilliseconds);
            }
        }
    }

    public void AddTo(Metrics metrics, string prefix)
    {
        metrics.Add($"{prefix}.persist_publish_p50_ms", _persistPublish.PercentileMs(0.5));
        metrics.Add($"{prefix}.deliver_p50_ms", _deliver.PercentileMs(0.5));
        metrics.Add($"{prefix}.driver_p50_ms", _driver.PercentileMs(0.5));
        metrics.Add($"{prefix}.result_p50_ms", _result.PercentileMs(0.5));
    }
}

/// <summary>
/// Per-run hop timestamps of B1 as CSV (milliseconds after the trigger): the API answered the trigger, the run was
/// created, started, its step dispatched (decided), JetStream confirmed the dispatch, the driver received it, the
/// result was applied, the run finished. A periodic stall shows up as one hop growing in the slow runs.
/// </summary>
internal sealed class HopLog(string path)
{
    private readonly List<string> _lines = ["level,triggered_unix_ms,answered,created,started,dispatched,published,driver_recv,result_applied,finished"];

    public void Record(string level, DateTimeOffset triggered, DateTimeOffset answered, TrackedRun done)
    {
        var step = done.Run.Steps.Count > 0 && done.Run.Steps[0].Attempts is [.., var a] ? a : null;
        var recv = done.Steps.Count > 0 ? done.Steps.Values.Min(s => s.Recv) : (DateTimeOffset?)null;
        string Ms(DateTimeOffset? t) => t is { } v ? (v - triggered).TotalMilliseconds.ToString("F2", System.Globalization.CultureInfo.InvariantCulture) : "";
        var line = string.Join(',', level, triggered.ToUnixTimeMilliseconds().ToString(System.Globalization.CultureInfo.InvariantCulture),
            Ms(answered), Ms(done.Run.CreatedAt), Ms(done.Run.StartedAt), Ms(step?.DispatchedAt), Ms(step?.PublishedAt), Ms(recv),
            Ms(step?.FinishedAt), Ms(done.Run.FinishedAt));
        lock (_lines)
        {
            _lines.Add(line);
        }
    }

    public void Flush()
    {
        lock (_lines)
        {
            if (Path.GetDirectoryName(Path.GetFullPath(path)) is { } dir)
            {
                Directory.CreateDirectory(dir);
            }

            File.WriteAllLines(path, _lines);
        }
    }
}
