using System.Globalization;

namespace Conveyor.Bench;

/// <summary>
/// CPU time per step of every process a system runs on the machine (its servers, workers and the measuring client),
/// sampled at the edges of a measured window: which share of the machine a step costs, and where it goes.
/// </summary>
internal static class CpuSplit
{
    /// <summary>Records <c>{prefix}.{process}</c> and <c>{prefix}.all</c> in ms per step, and logs them.</summary>
    /// <param name="unit">What one of <paramref name="steps"/> is called in the log line.</param>
    public static async Task AddAsync(
        string prefix,
        IReadOnlyDictionary<string, TimeSpan> start,
        IReadOnlyDictionary<string, TimeSpan> end,
        double steps,
        double seconds,
        Metrics metrics,
        TextWriter log,
        string unit = "step")
    {
        if (steps <= 0)
        {
            return;
        }

        var perStep = end.Where(p => start.ContainsKey(p.Key))
            .ToDictionary(p => p.Key, p => (p.Value - start[p.Key]).TotalMilliseconds / steps, StringComparer.Ordinal);
        foreach (var (name, ms) in perStep)
        {
            metrics.Add($"{prefix}.{name}", ms);
        }

        var all = perStep.Values.Sum();
        metrics.Add($"{prefix}.all", all);
        await log.WriteLineAsync(string.Create(
            CultureInfo.InvariantCulture,
            $"  CPU per {unit}: {string.Join(", ", perStep.Select(p => $"{p.Key} {p.Value:F3} ms"))}; all {all:F3} ms, {all * steps / seconds / 1000:F2} of {Environment.ProcessorCount} cores"));
    }

    /// <summary>This process's CPU time so far.</summary>
    public static TimeSpan Self() => System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime;
}
