using System.Globalization;
using System.Text;
using Conveyor.Contracts;
using Conveyor.Client;

namespace Conveyor.Cli;

/// <summary>Text views of runs: the step DAG with states and progress, and the run list.</summary>
internal static class RunView
{
    private static readonly string[] Headings = ["ID", "PIPELINE", "RESOURCE", "STATUS", "CREATED", "MESSAGE"];

    /// <summary>The run's header, a progress bar and one line per step in dependency order, indented by DAG depth.</summary>
    public static string Render(RunInfo run, DateTimeOffset now, bool withClock)
    {
        ArgumentNullException.ThrowIfNull(run);
        var sb = new StringBuilder();
        var done = run.Steps.Count(s => IsTerminal(s.Status));
        var total = run.Steps.Count;
        const int width = 20;
        var filled = total == 0 ? width : done * width / total;
        sb.Append(CultureInfo.InvariantCulture, $"run {run.Id}  pipeline {run.Pipeline}  resource {run.ResourceType}/{run.ResourceName}");
        if (run.RunAttempt > 1)
        {
            sb.Append(CultureInfo.InvariantCulture, $"  (run attempt {run.RunAttempt})");
        }

        sb.AppendLine();
        sb.Append(CultureInfo.InvariantCulture, $"{run.Status,-10} [{new string('#', filled)}{new string('.', width - filled)}] {done}/{total} steps");
        if (withClock && run.StartedAt is { } started)
        {
            sb.Append(CultureInfo.InvariantCulture, $"  {Duration((run.FinishedAt ?? now) - started)}");
        }

        sb.AppendLine();
        var depth = Depths(run.Steps);
        var idWidth = run.Steps.Count == 0 ? 4 : run.Steps.Max(s => s.Id.Length + (2 * depth[s.Id]));
        foreach (var step in Ordered(run.Steps, depth))
        {
            var indent = new string(' ', 2 * depth[step.Id]);
            sb.Append(CultureInfo.InvariantCulture, $"  {indent}{Symbol(step.Status)} {step.Id.PadRight(idWidth - indent.Length)}  {step.Status,-10}");
            if (step.Attempt > 0)
            {
                sb.Append(CultureInfo.InvariantCulture, $" attempt {step.Attempt}");
            }

            if (step.Attempts.Count > 0 && step.Attempts[^1] is { FinishedAt: { } end } last)
            {
                sb.Append(CultureInfo.InvariantCulture, $"  {Duration(end - last.DispatchedAt)}");
            }

            if (step.WaitingForDriver)
            {
                sb.Append(CultureInfo.InvariantCulture, $"  waiting for driver {step.Driver}");
            }

            if (step.DependsOn.Count > 0)
            {
                sb.Append(CultureInfo.InvariantCulture, $"  after {string.Join(", ", step.DependsOn)}");
            }

            if (!string.IsNullOrEmpty(step.Message) && step.Status is not StepStatus.Succeeded)
            {
                sb.Append(CultureInfo.InvariantCulture, $"  — {OneLine(step.Message)}");
            }

            sb.AppendLine();
        }

        if (run.IsFinished && !string.IsNullOrEmpty(run.Message))
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"  {OneLine(run.Message)}");
        }

        return sb.ToString();
    }

    /// <summary>A table of runs.</summary>
    public static string Table(IReadOnlyList<RunSummaryInfo> runs)
    {
        ArgumentNullException.ThrowIfNull(runs);
        var rows = new List<string[]> { Headings };
        rows.AddRange(runs.Select(r => new[]
        {
            r.Id.ToString(), r.Pipeline, $"{r.ResourceType}/{r.ResourceName}", r.Status.ToString(),
            r.CreatedAt.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture), OneLine(r.Message),
        }));
        var widths = Enumerable.Range(0, 5).Select(i => rows.Max(r => r[i].Length)).ToArray();
        var sb = new StringBuilder();
        foreach (var row in rows)
        {
            for (var i = 0; i < 5; i++)
            {
                sb.Append(row[i].PadRight(widths[i])).Append("  ");
            }

            sb.AppendLine(row[5]);
        }

        return sb.ToString();
    }

    /// <summary>Whether a step will not change any more.</summary>
    public static bool IsTerminal(StepStatus status) =>
        status is StepStatus.Succeeded or StepStatus.Failed or StepStatus.Skipped or StepStatus.Cancelled or StepStatus.TimedOut;

    private static string Symbol(StepStatus status) => status switch
    {
        StepStatus.Succeeded => "✔",
        StepStatus.Failed or StepStatus.TimedOut => "✘",
        StepStatus.Cancelled => "⊘",
        StepStatus.Skipped => "-",
        StepStatus.Dispatched or StepStatus.Running => "▶",
        StepStatus.Retrying => "↻",
        _ => "·",
    };

    private static string Duration(TimeSpan d) => d.TotalSeconds < 60
        ? d.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture) + "s"
        : d.TotalMinutes < 60 ? $"{(int)d.TotalMinutes}m{d.Seconds:00}s" : $"{(int)d.TotalHours}h{d.Minutes:00}m";

    private static string OneLine(string text)
    {
        var line = text.ReplaceLineEndings(" ");
        return line.Length > 120 ? line[..117] + "..." : line;
    }

    /// <summary>Longest path from a root, so a step is drawn under everything it waits for.</summary>
    private static Dictionary<string, int> Depths(IReadOnlyList<StepInfo> steps)
    {
        var byId = steps.ToDictionary(s => s.Id, StringComparer.Ordinal);
        var depth = new Dictionary<string, int>(StringComparer.Ordinal);
        int Of(string id, int guard)
        {
            if (depth.TryGetValue(id, out var d))
            {
                return d;
            }

            // The server rejects cycles; the guard only keeps a corrupt answer from recursing forever.
            d = guard > steps.Count || !byId.TryGetValue(id, out var s) || s.DependsOn.Count == 0
                ? 0
                : 1 + s.DependsOn.Where(byId.ContainsKey).Select(p => Of(p, guard + 1)).DefaultIfEmpty(-1).Max();
            depth[id] = d;
            return d;
        }

        foreach (var step in steps)
        {
            Of(step.Id, 0);
        }

        return depth;
    }

    private static IEnumerable<StepInfo> Ordered(IReadOnlyList<StepInfo> steps, Dictionary<string, int> depth) =>
        steps.Select((s, i) => (s, i)).OrderBy(x => depth[x.s.Id]).ThenBy(x => x.i).Select(x => x.s);
}
