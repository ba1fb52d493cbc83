using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Conveyor.Bench;

/// <summary>The numbers of one pass, by name; names end in their unit.</summary>
internal sealed class Metrics
{
    public Dictionary<string, double> Values { get; } = new(StringComparer.Ordinal);

    public void Add(string name, double value) => Values[name] = value;

    /// <summary>What is not a number: settings a reader needs beside the numbers, and why a part was skipped.</summary>
    public Dictionary<string, string> Notes { get; } = new(StringComparer.Ordinal);
}

/// <summary>A target of the issue, checked against a median.</summary>
internal sealed record Target(string Metric, string Op, double Value)
{
    public static IReadOnlyList<Target> All { get; } =
    [
        new("b3.steps_per_s", ">=", 5000),
        new("b1.open.driver_p99_ms", "<", 10),
        new("ratio.b3_steps_over_floor", ">=", 0.5),
        new("b2.chain.overhead_ms_per_node", "<", 0.2),
        new("b2.fanout.overhead_ms_per_node", "<", 0.2),
        new("b2.diamond.overhead_ms_per_node", "<", 0.2),
        new("b2.chain.growth_per_node_x4", "<=", 1.5),
        new("b2.fanout.growth_per_node_x4", "<=", 1.5),
        new("b2.diamond.growth_per_node_x4", "<=", 1.5),
        new("footprint.idle_rss_mb", "<", 150),
    ];

    public bool Met(double actual) => Op switch
    {
        ">=" => actual >= Value,
        "<" => actual < Value,
        "<=" => actual <= Value,
        _ => false,
    };

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Op} {Value:G}");
}

/// <summary>Medians over repeated passes, printed as a table and written as JSON.</summary>
internal static class Report
{
    /// <summary>Ratios of the engine to its floor, once both sides of a pass are known.</summary>
    public static void AddRatios(Metrics m)
    {
        if (m.Values.TryGetValue("b3.steps_per_s", out var steps) && m.Values.TryGetValue("floor.saturated.round_trips_per_s", out var floor))
        {
            m.Add("ratio.b3_steps_over_floor", steps / floor);
        }

        if (m.Values.TryGetValue("b1.closed.c1.runs_per_s", out var runs) && m.Values.TryGetValue("floor.c1.round_trips_per_s", out var floor1))
        {
            m.Add("ratio.b1_c1_runs_over_floor_c1", runs / floor1);
        }

        // Conveyor over each peer (above 1: Conveyor is faster), measured in the same pass on the same machine.
        foreach (var peer in new[] { "hangfire", "bullmq" })
        {
            if (m.Values.TryGetValue($"peers.{peer}.steps_per_s", out var peerSteps) && m.Values.TryGetValue("b3.steps_per_s", out var b3))
            {
                m.Add($"ratio.b3_steps_over_{peer}", b3 / peerSteps);
            }

            if (m.Values.TryGetValue($"peers.{peer}.c1.jobs_per_s", out var peerJobs) && m.Values.TryGetValue("b1.closed.c1.runs_per_s", out var c1))
            {
                m.Add($"ratio.b1_c1_runs_over_{peer}_c1_jobs", c1 / peerJobs);
            }
        }
    }

    public static Dictionary<string, double> Medians(IReadOnlyList<Metrics> passes)
    {
        var names = passes.SelectMany(p => p.Values.Keys).Distinct().ToList();
        var medians = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var name in names)
        {
            var values = passes.Where(p => p.Values.ContainsKey(name)).Select(p => p.Values[name]).Order().ToList();
            medians[name] = values.Count % 2 == 1 ? values[values.Count / 2] : (values[(values.Count / 2) - 1] + values[values.Count / 2]) / 2;
        }

        return medians;
    }

    public static void Print(TextWriter output, IReadOnlyList<Metrics> passes, Dictionary<string, double> medians)
    {
        output.WriteLine();
        foreach (var (name, note) in Notes(passes))
        {
            output.WriteLine($"{name}: {note}");
        }

        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Median of {passes.Count} pass(es); min and max across passes; target from the issue."));
        output.WriteLine("| metric | median | min | max | target | met |");
        output.WriteLine("|---|---:|---:|---:|---|---|");
        foreach (var (name, median) in medians)
        {
            var values = passes.Where(p => p.Values.ContainsKey(name)).Select(p => p.Values[name]).ToList();
            var target = Target.All.FirstOrDefault(t => t.Metric == name);
            output.WriteLine(string.Create(
                CultureInfo.InvariantCulture,
                $"| {name} | {Format(median)} | {Format(values.Min())} | {Format(values.Max())} | {target?.ToString() ?? ""} | {(target is null ? "" : target.Met(median) ? "yes" : "NO")} |"));
        }
    }

    public static async Task WriteJsonAsync(string path, string scenario, BenchSettings settings, IReadOnlyList<Metrics> passes, Dictionary<string, double> medians)
    {
        var json = new JsonObject
        {
            ["scenario"] = scenario,
            ["date"] = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture),
            ["processors"] = Environment.ProcessorCount,
            ["settings"] = JsonSerializer.SerializeToNode(settings),
            ["medians"] = ToNode(medians),
            ["targets"] = new JsonArray(Target.All.Where(t => medians.ContainsKey(t.Metric)).Select(t => (JsonNode)new JsonObject
            {
                ["metric"] = t.Metric,
                ["target"] = t.ToString(),
                ["median"] = Finite(medians[t.Metric]),
                ["met"] = t.Met(medians[t.Metric]),
            }).ToArray()),
            ["passes"] = new JsonArray(passes.Select(p => (JsonNode)ToNode(p.Values)).ToArray()),
        };
        if (Notes(passes) is { Count: > 0 } notes)
        {
            var o = new JsonObject();
            foreach (var (name, note) in notes)
            {
                o[name] = note;
            }

            json["notes"] = o;
        }

        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        await File.WriteAllTextAsync(path, json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>Every pass's notes; a note that differs between passes is shown once per distinct text.</summary>
    private static SortedDictionary<string, string> Notes(IReadOnlyList<Metrics> passes) =>
        new(passes.SelectMany(p => p.Notes).GroupBy(n => n.Key, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => string.Join(" | ", g.Select(n => n.Value).Distinct(StringComparer.Ordinal)), StringComparer.Ordinal), StringComparer.Ordinal);

    private static JsonObject ToNode(Dictionary<string, double> values)
    {
        var o = new JsonObject();
        foreach (var (k, v) in values)
        {
            o[k] = Finite(v);
        }

        return o;
    }

    private static JsonValue? Finite(double v) => double.IsFinite(v) ? JsonValue.Create(Math.Round(v, 4)) : null;

    private static string Format(double v) =>
        !double.IsFinite(v) ? "-" : Math.Abs(v) >= 100 ? v.ToString("N0", CultureInfo.InvariantCulture) : v.ToString("0.###", CultureInfo.InvariantCulture);
}
