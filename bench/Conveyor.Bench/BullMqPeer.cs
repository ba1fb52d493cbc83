using System.Globalization;
using System.Reflection;
using System.Text.Json;

namespace Conveyor.Bench;

/// <summary>
/// BullMQ on the same ten-step chains, when <c>node</c> is on PATH: <c>bench/peers/bullmq/bench.mjs</c> runs a
/// Worker (<see cref="PeerSettings.Workers"/> concurrency) in one node process and the measuring client in another,
/// with the same loops as <see cref="PeerLoops"/>. Its packages come from <c>npm ci</c> into that folder when
/// <c>node_modules</c> is absent (not with <c>--smoke</c>, which needs no network). Whatever stops it is recorded as a
/// note, and the pass goes on without it.
/// </summary>
internal sealed class BullMqPeer(BenchSettings settings, PeerSettings peers, Metrics metrics, TextWriter log)
{
    public async Task RunAsync()
    {
        if (await SkipReasonAsync() is { } reason)
        {
            metrics.Notes["peers.bullmq"] = "skipped: " + reason;
            await log.WriteLineAsync($"  bullmq: SKIPPED: {reason}");
            return;
        }

        var dir = Folder;
        await using var redis = await PeerRedis.StartAsync("bullmq", peers.Fsync);
        var port = redis.Port.ToString(CultureInfo.InvariantCulture);
        await using var worker = ChildProcess.StartProgram(
            "bullmq-worker", "node", ["bench.mjs", "worker", "--redis", port, "--concurrency", peers.Workers.ToString(CultureInfo.InvariantCulture)], "ready", dir);
        await worker.WaitReadyAsync(TimeSpan.FromSeconds(60));
        // The client says when its measured window opens and closes; the CPU of the three processes is read then.
        Dictionary<string, TimeSpan> cpuStart = [], cpuEnd = [];
        ChildProcess? clientProcess = null;
        Dictionary<string, TimeSpan> Cpu() => new(StringComparer.Ordinal)
        {
            ["redis-server"] = redis.Cpu,
            ["bullmq-worker"] = worker.Cpu,
            ["bullmq-client"] = clientProcess?.Cpu ?? TimeSpan.Zero,
        };
        await using var client = clientProcess = ChildProcess.StartProgram(
            "bullmq-client",
            "node",
            [
                "bench.mjs", "client", "--redis", port,
                "--inflight", settings.InFlight.ToString(CultureInfo.InvariantCulture),
                "--seconds", settings.Seconds.ToString(CultureInfo.InvariantCulture),
                "--runs", settings.Runs.ToString(CultureInfo.InvariantCulture),
            ],
            readyLine: null,
            dir,
            onLine: line =>
            {
                if (line == "window start")
                {
                    cpuStart = Cpu();
                }
                else if (line == "window end")
                {
                    cpuEnd = Cpu();
                }
            });
        var exit = await client.WaitForExitAsync(TimeSpan.FromSeconds((settings.Seconds * 2) + 300));
        var line = client.Tail.Split('\n').LastOrDefault(l => l.StartsWith("result ", StringComparison.Ordinal));
        if (exit != 0 || line is null)
        {
            throw new InvalidOperationException($"the bullmq client exited with {exit}:\n{client.Tail}\nworker:\n{worker.Tail}");
        }

        using var result = JsonDocument.Parse(line["result ".Length..]);
        double R(string name) => result.RootElement.GetProperty(name).GetDouble();
        metrics.Add("peers.bullmq.steps_per_s", R("steps_per_s"));
        metrics.Add("peers.bullmq.c1.jobs_per_s", R("c1_jobs_per_s"));
        metrics.Add("peers.bullmq.c1.start_p50_ms", R("c1_start_p50_ms"));
        metrics.Add("peers.bullmq.c1.start_p99_ms", R("c1_start_p99_ms"));
        await CpuSplit.AddAsync("peers.bullmq.cpu_ms_per_step", cpuStart, cpuEnd, R("steps_per_s") * settings.Seconds, settings.Seconds, metrics, log);
        await log.WriteLineAsync(string.Create(
            CultureInfo.InvariantCulture,
            $"  bullmq: {settings.InFlight} ten-step chains in flight: {R("steps_per_s"):F0} steps/s; one in flight: {R("c1_jobs_per_s"):F0} jobs/s, enqueue→worker start p99 {R("c1_start_p99_ms"):F2} ms"));
    }

    /// <summary><c>bench/peers/bullmq</c> of the source tree the tool was built from (or <c>CONVEYOR_BENCH_PEERS</c>/bullmq).</summary>
    private static string Folder => Path.Combine(
        Environment.GetEnvironmentVariable("CONVEYOR_BENCH_PEERS") is { Length: > 0 } peers
            ? peers
            : typeof(BullMqPeer).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().First(a => a.Key == "PeersDirectory").Value!,
        "bullmq");

    private async Task<string?> SkipReasonAsync()
    {
        if (!OnPath("node"))
        {
            return "node is not on PATH";
        }

        if (!File.Exists(Path.Combine(Folder, "bench.mjs")))
        {
            return $"{Folder}/bench.mjs does not exist";
        }

        if (Directory.Exists(Path.Combine(Folder, "node_modules")))
        {
            return null;
        }

        if (peers.Smoke)
        {
            return $"its packages are not installed and --smoke needs no network (run 'npm ci' in {Folder} once)";
        }

        if (!OnPath("npm"))
        {
            return "npm is not on PATH to install its packages";
        }

        await log.WriteLineAsync($"  bullmq: npm ci in {Folder}");
        await using var npm = ChildProcess.StartProgram("npm", "npm", ["ci", "--no-audit", "--no-fund"], readyLine: null, Folder);
        int exit;
        try
        {
            exit = await npm.WaitForExitAsync(TimeSpan.FromMinutes(5));
        }
        catch (OperationCanceledException)
        {
            return "npm ci did not finish in 5 minutes (is the package registry reachable?)";
        }

        return exit == 0 ? null : $"npm ci failed with {exit} (is the package registry reachable?): {npm.Tail.Split('\n').LastOrDefault()}";
    }

    private static bool OnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Any(dir => File.Exists(Path.Combine(dir, program)));
}
