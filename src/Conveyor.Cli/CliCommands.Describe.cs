using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Conveyor.Client;

namespace Conveyor.Cli;

/// <content><c>conveyor describe &lt;kind&gt; &lt;name&gt;</c>: one object for people to read.</content>
internal sealed partial class CliCommands
{
    private Command DescribeCommand()
    {
        var describe = new Command("describe", "Show one object in detail, for people: its fields, and for a pipeline its steps and latest runs, for a run its steps");
        foreach (var kind in Kind.All)
        {
            var command = new Command(kind.Singular == "resource-definition" ? "definition" : kind.Singular, $"Describe a {kind.Singular}");
            foreach (var alias in kind.Aliases.Append(kind.Plural).Where(a => a != command.Name).Distinct())
            {
                command.Aliases.Add(alias);
            }

            var key = kind.Key.Select(k => new Argument<string>(k == "resource" ? "type" : k == "id" && kind == Kind.Runs ? "run" : k)
            {
                Description = k == "resource" ? "The resource's type" : kind == Kind.Runs ? "Run id, @latest or <pipeline>@latest" : "Name or id",
            }).ToList();
            key.ForEach(command.Arguments.Add);
            var pipeline = kind == Kind.Runs ? new Option<string?>("--pipeline", "-p") { Description = "With @latest: the newest run of this pipeline" } : null;
            if (pipeline is not null)
            {
                command.Options.Add(pipeline);
            }

            command.SetAction((parse, ct) => Execute(parse, async client =>
            {
                var values = key.Select(a => parse.GetValue(a)!).ToList();
                if (kind == Kind.Runs)
                {
                    var run = await client.GetRunAsync(await ResolveRunAsync(client, values[0], parse.GetValue(pipeline!), ct).ConfigureAwait(false), ct).ConfigureAwait(false);
                    await Out.WriteAsync(DescribeRun(run, await GetJsonAsync(client, kind.ItemPath([run.Id.ToString("D")]), ct).ConfigureAwait(false))).ConfigureAwait(false);
                    return ExitCodes.Ok;
                }

                var item = await GetJsonAsync(client, kind.ItemPath(values), ct).ConfigureAwait(false);
                var text = new StringBuilder(Fields(item, kind == Kind.Pipelines ? ["steps"] : []));
                if (kind == Kind.Pipelines)
                {
                    text.Append(PipelineSteps(item));
                    var runs = await GetJsonAsync(client, kind.ItemPath(values) + "/runs?limit=5", ct).ConfigureAwait(false);
                    var latest = runs.TryGetProperty("items", out var items) ? items.EnumerateArray().ToList() : [];
                    text.Append("Latest runs:\n");
                    text.Append(latest.Count == 0 ? "  none\n" : Indent(Output.Table(Kind.Runs.Columns, latest), 2));
                }

                await Out.WriteAsync(text.ToString()).ConfigureAwait(false);
                return ExitCodes.Ok;
            }));
            describe.Subcommands.Add(command);
        }

        return describe;
    }

    /// <summary>The run's step view, then what started it and with which parameters.</summary>
    private static string DescribeRun(RunInfo run, JsonElement raw)
    {
        var sb = new StringBuilder(RunView.Render(run, DateTimeOffset.UtcNow, withClock: true));
        sb.Append(CultureInfo.InvariantCulture, $"Trigger:     {run.Trigger}{(run.TriggerId is { } t ? " (" + t + ")" : "")}\n");
        sb.Append(CultureInfo.InvariantCulture, $"Priority:    {run.Priority}\n");
        sb.Append(CultureInfo.InvariantCulture, $"Created:     {run.CreatedAt.UtcDateTime:yyyy-MM-dd HH:mm:ss}\n");
        if (run.FinishedAt is { } finished)
        {
            sb.Append(CultureInfo.InvariantCulture, $"Finished:    {finished.UtcDateTime:yyyy-MM-dd HH:mm:ss}\n");
        }

        if (raw.TryGetProperty("params", out var p) && p.ValueKind == JsonValueKind.Object)
        {
            sb.Append("Params:\n").Append(Indent(Yaml.Write(p), 2));
        }

        return sb.ToString();
    }

    /// <summary>Each member as <c>Label: value</c>; objects and lists as indented YAML.</summary>
    private static string Fields(JsonElement item, IReadOnlyCollection<string> skip)
    {
        var members = item.EnumerateObject()
            .Where(m => !skip.Contains(m.Name) && m.Value.ValueKind is not (JsonValueKind.Null or JsonValueKind.Undefined) && !(m.Value.ValueKind == JsonValueKind.String && m.Value.GetString()!.Length == 0))
            .ToList();
        var width = members.Count == 0 ? 0 : members.Max(m => Label(m.Name).Length) + 2;
        var sb = new StringBuilder();
        foreach (var m in members)
        {
            var complex = m.Value.ValueKind is JsonValueKind.Object or JsonValueKind.Array
                && (m.Value.ValueKind == JsonValueKind.Object ? m.Value.EnumerateObject().Any() : m.Value.GetArrayLength() > 0);
            sb.Append(complex ? Label(m.Name) + ":\n" + Indent(Yaml.Write(m.Value), 2) : (Label(m.Name) + ":").PadRight(width) + " " + Yaml.Write(m.Value));
        }

        return sb.ToString();
    }

    private static string PipelineSteps(JsonElement pipeline)
    {
        if (!pipeline.TryGetProperty("steps", out var steps) || steps.ValueKind != JsonValueKind.Array)
        {
            return "";
        }

        var columns = new Column[]
        {
            new("ID", s => Output.Str(s, "id")), new("DRIVER", s => Output.Str(s, "driver")),
            new("DEPENDS ON", s => s.TryGetProperty("dependsOn", out var d) && d.ValueKind == JsonValueKind.Array ? string.Join(",", d.EnumerateArray().Select(x => x.GetString())) : "(previous)"),
            new("RETRY", s => s.TryGetProperty("retry", out var r) && r.ValueKind == JsonValueKind.Object ? Output.Str(r, "maxAttempts") : ""),
            new("TIMEOUT", s => Output.Str(s, "timeout")),
        };
        return "Steps:\n" + Indent(Output.Table(columns, steps.EnumerateArray().ToList()), 2);
    }

    /// <summary><c>createdAt</c> → <c>Created at</c>.</summary>
    private static string Label(string name)
    {
        var sb = new StringBuilder();
        foreach (var c in name)
        {
            if (char.IsUpper(c) && sb.Length > 0)
            {
                sb.Append(' ').Append(char.ToLowerInvariant(c));
            }
            else
            {
                sb.Append(sb.Length == 0 ? char.ToUpperInvariant(c) : c);
            }
        }

        return sb.ToString();
    }

    private static string Indent(string text, int spaces) =>
        string.Concat(text.ReplaceLineEndings("\n").TrimEnd('\n').Split('\n').Select(l => (l.Length == 0 ? "" : new string(' ', spaces) + l) + "\n"));
}
