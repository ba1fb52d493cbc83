using System.Globalization;
using System.Net;
using System.Text;
using Conveyor.Grains.Abstractions;
using Conveyor.Contracts;

namespace Conveyor.Api.Http;

/// <summary>Renders a run's DAG with each step coloured by status: Mermaid, Graphviz DOT, or a self-contained SVG.</summary>
internal static class RunGraph
{
    private const int NodeWidth = 150;
    private const int NodeHeight = 46;
    private const int ColumnGap = 60;
    private const int RowGap = 18;
    private const int Margin = 16;

    /// <summary>Fill colour of a step status.</summary>
    public static string Colour(StepStatus status) => status switch
    {
        StepStatus.Succeeded => "#2e7d32",
        StepStatus.Failed or StepStatus.TimedOut => "#c62828",
        StepStatus.Dispatched or StepStatus.Running => "#1565c0",
        StepStatus.Retrying => "#ef6c00",
        StepStatus.WaitingForApproval => "#f9a825",
        StepStatus.Cancelled => "#6a1b9a",
        StepStatus.Skipped => "#9e9e9e",
        _ => "#607d8b",
    };

    /// <summary>A Mermaid flowchart (left to right).</summary>
    public static string Mermaid(RunState run)
    {
        ArgumentNullException.ThrowIfNull(run);
        var ids = NodeIds(run);
        var sb = new StringBuilder("flowchart LR\n");
        foreach (var step in run.Steps)
        {
            var spec = run.Plan.Pipeline.Steps.First(s => s.Id == step.Id);
            // The step's name is free text: escaped, so it can neither end the label nor bring HTML into it.
            var label = $"{MermaidText(Label(spec))}<br/>{step.Status}{AttemptSuffix(step)}";
            sb.Append(CultureInfo.InvariantCulture, $"  {ids[step.Id]}[\"{label}\"]:::{step.Status.ToString().ToLowerInvariant()}\n");
        }

        foreach (var spec in run.Plan.Pipeline.Steps)
        {
            foreach (var dep in spec.DependsOn)
            {
                sb.Append(CultureInfo.InvariantCulture, $"  {ids[dep]} --> {ids[spec.Id]}\n");
            }
        }

        foreach (var status in Enum.GetValues<StepStatus>())
        {
            sb.Append(CultureInfo.InvariantCulture, $"  classDef {status.ToString().ToLowerInvariant()} fill:{Colour(status)},color:#fff,stroke:#333\n");
        }

        return sb.ToString();
    }

    /// <summary>A Graphviz DOT digraph.</summary>
    public static string Dot(RunState run)
    {
        ArgumentNullException.ThrowIfNull(run);
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"digraph \"run-{run.RunId}\" {{\n");
        sb.Append("  rankdir=LR;\n  node [shape=box, style=\"rounded,filled\", fontcolor=white, fontname=\"Helvetica\"];\n");
        foreach (var step in run.Steps)
        {
            var spec = run.Plan.Pipeline.Steps.First(s => s.Id == step.Id);
            sb.Append(CultureInfo.InvariantCulture, $"  {Quote(step.Id)} [label={Quote($"{Label(spec)}\n{step.Status}{AttemptSuffix(step)}")}, fillcolor=\"{Colour(step.Status)}\"];\n");
        }

        foreach (var spec in run.Plan.Pipeline.Steps)
        {
            foreach (var dep in spec.DependsOn)
            {
                sb.Append(CultureInfo.InvariantCulture, $"  {Quote(dep)} -> {Quote(spec.Id)};\n");
            }
        }

        sb.Append("}\n");
        return sb.ToString();
    }

    /// <summary>
    /// A layered SVG: a step's column is its longest distance from a root, so every edge points right. Linear in steps
    /// plus edges.
    /// </summary>
    public static string Svg(RunState run)
    {
        ArgumentNullException.ThrowIfNull(run);
        var specs = run.Plan.Pipeline.Steps;
        var level = Levels(specs);
        var rows = new Dictionary<int, int>();
        var position = new Dictionary<string, (int X, int Y)>(StringComparer.Ordinal);
        foreach (var spec in specs)
        {
            var column = level[spec.Id];
            var row = rows.GetValueOrDefault(column);
            rows[column] = row + 1;
            position[spec.Id] = (Margin + (column * (NodeWidth + ColumnGap)), Margin + (row * (NodeHeight + RowGap)));
        }

        var width = (2 * Margin) + ((rows.Count == 0 ? 1 : rows.Keys.Max() + 1) * (NodeWidth + ColumnGap)) - ColumnGap;
        var height = (2 * Margin) + ((rows.Count == 0 ? 1 : rows.Values.Max()) * (NodeHeight + RowGap)) - RowGap;
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n");
        sb.Append(CultureInfo.InvariantCulture, $"<title>{Xml($"run {run.RunId} of {run.Plan.Pipeline.Name}: {run.Status}")}</title>\n");
        sb.Append("<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"6\" markerHeight=\"6\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#555\"/></marker></defs>\n");
        foreach (var spec in specs)
        {
            var (x2, y2) = position[spec.Id];
            foreach (var dep in spec.DependsOn)
            {
                var (x1, y1) = position[dep];
                sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{x1 + NodeWidth}\" y1=\"{y1 + (NodeHeight / 2)}\" x2=\"{x2}\" y2=\"{y2 + (NodeHeight / 2)}\" stroke=\"#555\" marker-end=\"url(#arrow)\"/>\n");
            }
        }

        foreach (var step in run.Steps)
        {
            var spec = specs.First(s => s.Id == step.Id);
            var (x, y) = position[step.Id];
            sb.Append(CultureInfo.InvariantCulture, $"<g data-step=\"{Xml(step.Id)}\" data-status=\"{step.Status}\">");
            sb.Append(CultureInfo.InvariantCulture, $"<rect x=\"{x}\" y=\"{y}\" width=\"{NodeWidth}\" height=\"{NodeHeight}\" rx=\"8\" fill=\"{Colour(step.Status)}\"/>");
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{x + (NodeWidth / 2)}\" y=\"{y + 19}\" text-anchor=\"middle\" fill=\"#fff\" font-weight=\"bold\">{Xml(Clip(Label(spec)))}</text>");
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{x + (NodeWidth / 2)}\" y=\"{y + 36}\" text-anchor=\"middle\" fill=\"#fff\">{Xml(step.Status + AttemptSuffix(step))}</text>");
            sb.Append("</g>\n");
        }

        sb.Append("</svg>\n");
        return sb.ToString();
    }

    private static Dictionary<string, int> Levels(IReadOnlyList<StepSpec> specs)
    {
        // Kahn's order over the (validated, acyclic) DAG; level = 1 + the deepest dependency.
        var pending = specs.ToDictionary(s => s.Id, s => s.DependsOn.Count, StringComparer.Ordinal);
        var dependents = specs.ToDictionary(s => s.Id, _ => new List<string>(), StringComparer.Ordinal);
        foreach (var spec in specs)
        {
            foreach (var dep in spec.DependsOn)
            {
                dependents[dep].Add(spec.Id);
            }
        }

        var level = specs.ToDictionary(s => s.Id, _ => 0, StringComparer.Ordinal);
        var queue = new Queue<string>(specs.Where(s => s.DependsOn.Count == 0).Select(s => s.Id));
        while (queue.Count > 0)
        {
            var id = queue.Dequeue();
            foreach (var next in dependents[id])
            {
                level[next] = Math.Max(level[next], level[id] + 1);
                if (--pending[next] == 0)
                {
                    queue.Enqueue(next);
                }
            }
        }

        return level;
    }

    private static Dictionary<string, string> NodeIds(RunState run) =>
        run.Steps.Select((s, i) => (s.Id, Node: "s" + i.ToString(CultureInfo.InvariantCulture))).ToDictionary(x => x.Id, x => x.Node, StringComparer.Ordinal);

    private static string Label(StepSpec spec) => string.IsNullOrEmpty(spec.Name) || spec.Name == spec.Id ? spec.Id : $"{spec.Id}: {spec.Name}";

    private static string AttemptSuffix(StepState step) => step.Attempts.Count > 1 ? $" (attempt {step.Attempts.Count})" : "";

    /// <summary>
    /// Text for a Mermaid label: Mermaid's entity codes for what would end the label (<c>"</c>) or be read as HTML
    /// (<c>&lt;</c>, <c>&gt;</c>, <c>&amp;</c>), <c>#</c> first so no entity code survives from the input, and line
    /// breaks as spaces (a line break ends the statement).
    /// </summary>
    internal static string MermaidText(string text)
    {
        var sb = new StringBuilder(text.Length + 16);
        foreach (var c in text)
        {
            sb.Append(c switch
            {
                '#' => "#35;",
                '"' => "#quot;",
                '<' => "#lt;",
                '>' => "#gt;",
                '&' => "#amp;",
                '\r' or '\n' or '\u2028' or '\u2029' => " ",
                _ => c.ToString(),
            });
        }

        return sb.ToString();
    }

    private static string Clip(string text) => text.Length <= 22 ? text : text[..21] + "…";

    private static string Quote(string text) => "\"" + text.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal) + "\"";

    private static string Xml(string text) => WebUtility.HtmlEncode(text);
}
