using System.Globalization;

namespace Conveyor.Bench;

/// <summary>
/// The tool's command line. Scenarios: <c>all</c> (footprint, floor, B1, B2, B3 in one engine per pass),
/// <c>dispatch</c> (B1), <c>dag</c> (B2), <c>saturation</c> (B3 and footprint), <c>floor</c>, <c>logs</c> and
/// <c>retention</c> (the soak: Redis memory and keys under steady runs with a short retention), and <c>peers</c>
/// (B3 beside Hangfire and BullMQ on the same ten-step chains).
/// </summary>
public static class BenchTool
{
    private const string Usage = """
        usage: dotnet run -c Release --project bench/Conveyor.Bench -- <scenario> [options]
          scenarios: all | dispatch | dag | saturation | floor | logs | retention | peers
          --repeat N      passes, each on a fresh engine; the table shows medians (default 3; 1 with --smoke)
          --json PATH     where to write the results (default bench-results/<scenario>.json)
          --smoke         a seconds-long pass with tiny sizes, to check the tool works
          --runs R        B1 runs per concurrency level (1000)
          --nodes N       B2 DAG size (1000; each shape also runs at N/4)
          --seconds S     B3 measured seconds (15)
          --inflight C    B3 ten-step runs in flight, and the floor's saturated concurrency (64)
          --drivers D     no-op driver processes (2)
          --floor-messages M   floor round trips per level (5000)
          --levels 1,16   B1 closed-loop concurrency levels (1,16,128)
          --hops PATH     write every B1 run's per-hop timestamps to PATH (CSV)
          --silo Key=Value     configuration for the silo (repeatable), e.g. --silo Conveyor:CDEvents:Enabled=false
          --silo-env N=V       environment variable for the silo process only (repeatable)
          peers only: --peer-fsync everysec|always (the peers' redis; default everysec)
                      --peer-workers W (Hangfire workers, BullMQ concurrency; default --inflight)
                      --systems conveyor,hangfire,bullmq (default all; --runs is each one's one-in-flight count)
          logs only: --steps 100 --seconds 10 --out bench-results
          retention only: --seconds 600 --rate 5 (runs/s) --retention 60 (s) --json bench-results/retention.json
        """;

    /// <summary>Runs the tool; returns the process exit code.</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(output);
        var scenario = args.FirstOrDefault(a => !a.StartsWith("--", StringComparison.Ordinal)) ?? "all";
        if (scenario == "logs")
        {
            return await RunLogsAsync(args, output);
        }

        if (scenario == "retention")
        {
            return await RetentionScenario.RunAsync(
                seconds: Option(args, "seconds", 600),
                rate: StringOption(args, "rate") is { } rate ? double.Parse(rate, CultureInfo.InvariantCulture) : 5,
                retentionSeconds: Option(args, "retention", 60),
                json: StringOption(args, "json") ?? Path.Combine("bench-results", "retention.json"),
                output);
        }

        if (scenario is not ("all" or "dispatch" or "dag" or "saturation" or "floor" or "peers") || args.Contains("--help"))
        {
            await output.WriteLineAsync(Usage);
            return scenario is "help" || args.Contains("--help") ? 0 : 2;
        }

        var smoke = args.Contains("--smoke");
        var baseline = smoke ? BenchSettings.Smoke : new BenchSettings();
        var settings = baseline with
        {
            Runs = Option(args, "runs", baseline.Runs),
            Nodes = Option(args, "nodes", baseline.Nodes),
            Seconds = Option(args, "seconds", baseline.Seconds),
            InFlight = Option(args, "inflight", baseline.InFlight),
            Drivers = Option(args, "drivers", baseline.Drivers),
            FloorMessages = Option(args, "floor-messages", baseline.FloorMessages),
            SiloSettings = Repeated(args, "silo"),
            SiloEnvironment = Repeated(args, "silo-env"),
            Levels = StringOption(args, "levels") is { } levels
                ? [.. levels.Split(',').Select(l => int.Parse(l, CultureInfo.InvariantCulture))]
                : scenario == "peers" ? [1] : baseline.Levels,
            HopsPath = StringOption(args, "hops"),
        };
        var repeat = Option(args, "repeat", smoke ? 1 : 3);
        var json = StringOption(args, "json") ?? Path.Combine("bench-results", scenario + ".json");

        var peers = new PeerSettings
        {
            Fsync = StringOption(args, "peer-fsync") ?? "everysec",
            Workers = Option(args, "peer-workers", settings.InFlight),
            Systems = StringOption(args, "systems") is { } systems ? systems.Split(',') : PeerSettings.AllSystems,
            Smoke = smoke,
        };
        if (scenario == "peers" && (peers.Fsync is not ("everysec" or "always") || peers.Systems.Except(PeerSettings.AllSystems).Any()))
        {
            await output.WriteLineAsync("peers: --peer-fsync is everysec or always; --systems names conveyor, hangfire, bullmq");
            await output.WriteLineAsync(Usage);
            return 2;
        }

        var passes = new List<Metrics>();
        for (var pass = 1; pass <= repeat; pass++)
        {
            await output.WriteLineAsync($"pass {pass} of {repeat}: {scenario}");
            var metrics = new Metrics();
            if (scenario == "peers")
            {
                await new PeersScenario(settings, peers, metrics, output).RunAsync();
                Report.AddRatios(metrics);
                passes.Add(metrics);
                continue;
            }

            await using (var engine = await EngineUnderTest.StartAsync(settings, output))
            {
                var scenarios = new EngineScenarios(engine, settings, metrics, output);
                if (scenario is "all" or "saturation")
                {
                    await scenarios.IdleFootprintAsync();
                }

                if (scenario is "all" or "floor")
                {
                    await new FloorScenario(engine, settings, metrics, output).RunAsync();
                }

                if (scenario is "all" or "dispatch")
                {
                    await scenarios.DispatchAsync();
                }

                if (scenario is "all" or "dag")
                {
                    await scenarios.DagAsync();
                }

                if (scenario is "all" or "saturation")
                {
                    await scenarios.SaturationAsync();
                }
            }

            Report.AddRatios(metrics);
            passes.Add(metrics);
        }

        var medians = Report.Medians(passes);
        Report.Print(output, passes, medians);
        await Report.WriteJsonAsync(json, scenario, settings, passes, medians);
        await output.WriteLineAsync($"results written to {json}");
        return 0;
    }

    private static async Task<int> RunLogsAsync(string[] args, TextWriter output)
    {
        var outDir = StringOption(args, "out") ?? "bench-results";
        var result = await LogsScenario.RunAsync(steps: Option(args, "steps", 100), seconds: Option(args, "seconds", 10));
        result.Print(output);
        await result.WriteJsonAsync(Path.Combine(outDir, "logs.json"));
        return result.Lost == 0 ? 0 : 1;
    }

    private static int Option(string[] args, string name, int fallback) =>
        StringOption(args, name) is { } value ? int.Parse(value, CultureInfo.InvariantCulture) : fallback;

    private static string? StringOption(string[] args, string name)
    {
        var i = Array.IndexOf(args, "--" + name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    /// <summary>Every value of an option that may be given more than once.</summary>
    private static List<string> Repeated(string[] args, string name)
    {
        var values = new List<string>();
        for (var i = 0; i + 1 < args.Length; i++)
        {
            if (args[i] == "--" + name)
            {
                values.Add(args[++i]);
            }
        }

        return values;
    }
}
