using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Conveyor.Client;

namespace Conveyor.Cli;

/// <content>
/// <c>conveyor runs list|show|trigger|watch|cancel|retry</c>. A run is named by its id, <c>@latest</c> or
/// <c>&lt;pipeline&gt;@latest</c>. More run commands can be added in another file through <see cref="AddRunCommands"/>.
/// </content>
internal sealed partial class CliCommands
{
    private Command RunsCommand()
    {
        var runs = new Command("runs", "List, show, trigger, watch, cancel, retry, pause and resume runs; approve or reject approval gates");
        runs.Aliases.Add("run");
        runs.Subcommands.Add(GetKindCommand(Kind.Runs, "list"));

        var showId = RunArgument();
        var showPipeline = LatestOfOption();
        var showOutput = Output.Option("json", "yaml");
        var showJson = new Option<bool>("--json") { Description = "The same as -o json", Hidden = true };
        var show = new Command("show", "Show a run: its steps in DAG order with status, attempt, duration and message") { showId, showPipeline, showOutput, showJson };
        show.SetAction((parse, ct) => Execute(parse, async client =>
        {
            var id = await ResolveRunAsync(client, parse.GetValue(showId)!, parse.GetValue(showPipeline), ct).ConfigureAwait(false);
            var format = parse.GetValue(showJson) ? OutputFormat.Json : Output.Parse(parse.GetValue(showOutput));
            if (format is OutputFormat.Json or OutputFormat.Yaml)
            {
                await Out.WriteAsync(Output.Document(await GetJsonAsync(client, $"runs/{id:D}", ct).ConfigureAwait(false), format)).ConfigureAwait(false);
                return ExitCodes.Ok;
            }

            await Out.WriteAsync(RunView.Render(await client.GetRunAsync(id, ct).ConfigureAwait(false), DateTimeOffset.UtcNow, withClock: true)).ConfigureAwait(false);
            return ExitCodes.Ok;
        }));
        runs.Subcommands.Add(show);

        var triggerPipeline = new Argument<string>("pipeline") { Description = "The pipeline to run" };
        var triggerResource = new Option<string>("--resource", "-r") { Description = "The existing resource (of the pipeline's type) to run it for", Required = true };
        var priority = new Option<int?>("--priority") { Description = "1 (lowest) to 5 (highest); default 3" };
        var parameters = new Option<string[]>("--param", "-P")
        {
            Description = "A run parameter, laid over each step's params: key=value (a string) or key:=json (any JSON value); repeatable",
        };
        var idempotencyKey = new Option<string?>("--idempotency-key") { Description = "Repeating a trigger with the same key returns the first run instead of starting another" };
        var triggerWatch = new Option<bool>("--watch", "-w") { Description = "Then watch the run until it ends" };
        var triggerOutput = Output.Option("json", "yaml", "name");
        var trigger = new Command("trigger", "Start a run of a pipeline for an existing resource")
        {
            triggerPipeline, triggerResource, priority, parameters, idempotencyKey, triggerWatch, triggerOutput,
        };
        trigger.SetAction((parse, ct) => Execute(parse, async client =>
        {
            var run = await client.TriggerRunAsync(
                parse.GetValue(triggerPipeline)!,
                parse.GetValue(triggerResource)!,
                parse.GetValue(priority),
                Params(parse.GetValue(parameters) ?? []),
                idempotencyKey: parse.GetValue(idempotencyKey),
                cancellationToken: ct).ConfigureAwait(false);
            var format = Output.Parse(parse.GetValue(triggerOutput));
            await Out.WriteAsync(format switch
            {
                OutputFormat.Json or OutputFormat.Yaml => Output.Document(JsonSerializer.SerializeToElement(run), format),
                OutputFormat.Name => $"run/{run.Id}\n",
                _ => $"run {run.Id} {run.Status}\n",
            }).ConfigureAwait(false);
            return parse.GetValue(triggerWatch) ? await WatchAsync(client, run.Id, TimeSpan.FromSeconds(0.5), ct).ConfigureAwait(false) : ExitCodes.Ok;
        }));
        runs.Subcommands.Add(trigger);

        var watchId = RunArgument();
        var watchPipeline = LatestOfOption();
        var interval = new Option<double>("--interval") { Description = "Seconds between redraws of the clock on a terminal (changes arrive as events, at once)", DefaultValueFactory = _ => 0.5 };
        var watch = new Command("watch", "Follow a run's steps live until it ends; exit code 1 when it does not succeed") { watchId, watchPipeline, interval };
        watch.SetAction((parse, ct) => Execute(parse, async client =>
            await WatchAsync(
                client,
                await ResolveRunAsync(client, parse.GetValue(watchId)!, parse.GetValue(watchPipeline), ct).ConfigureAwait(false),
                TimeSpan.FromSeconds(Math.Max(0.05, parse.GetValue(interval))),
                ct).ConfigureAwait(false)));
        runs.Subcommands.Add(watch);

        var cancelId = RunArgument();
        var cancelPipeline = LatestOfOption();
        var reason = new Option<string?>("--reason") { Description = "Why (shown on the run and sent to drivers)" };
        var cancel = new Command("cancel", "Cancel a pending, queued or running run") { cancelId, cancelPipeline, reason };
        cancel.SetAction((parse, ct) => Execute(parse, async client =>
        {
            var id = await ResolveRunAsync(client, parse.GetValue(cancelId)!, parse.GetValue(cancelPipeline), ct).ConfigureAwait(false);
            var run = await client.CancelRunAsync(id, parse.GetValue(reason), ct).ConfigureAwait(false);
            await Out.WriteLineAsync($"run {run.Id} {run.Status}").ConfigureAwait(false);
            return ExitCodes.Ok;
        }));
        runs.Subcommands.Add(cancel);

        var retryId = RunArgument();
        var retryPipeline = LatestOfOption();
        var retryWatch = new Option<bool>("--watch", "-w") { Description = "Then watch the run until it ends" };
        var retry = new Command("retry", "Re-run the steps of a failed, cancelled or timed-out run that did not succeed") { retryId, retryPipeline, retryWatch };
        retry.SetAction((parse, ct) => Execute(parse, async client =>
        {
            var id = await ResolveRunAsync(client, parse.GetValue(retryId)!, parse.GetValue(retryPipeline), ct).ConfigureAwait(false);
            var run = await client.RetryRunAsync(id, ct).ConfigureAwait(false);
            await Out.WriteLineAsync($"run {run.Id} {run.Status} (run attempt {run.RunAttempt})").ConfigureAwait(false);
            return parse.GetValue(retryWatch) ? await WatchAsync(client, run.Id, TimeSpan.FromSeconds(0.5), ct).ConfigureAwait(false) : ExitCodes.Ok;
        }));
        runs.Subcommands.Add(retry);
        AddRunCommands(runs);
        return runs;
    }

    /// <summary>Where other files add run commands (approvals, pause, event streams) to <c>conveyor runs</c>.</summary>
    partial void AddRunCommands(Command runs);

    private static Argument<string> RunArgument() => new("run") { Description = "Run id, @latest (the newest run) or <pipeline>@latest" };

    private static Option<string?> LatestOfOption() => new("--pipeline", "-p") { Description = "With @latest: the newest run of this pipeline" };

    /// <summary><c>key=value</c> (a string) and <c>key:=json</c> as one JSON object; null when there are none.</summary>
    private static JsonElement? Params(string[] pairs)
    {
        if (pairs.Length == 0)
        {
            return null;
        }

        var obj = new JsonObject();
        foreach (var pair in pairs)
        {
            var eq = pair.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0 || (eq == 1 && pair[0] == ':'))
            {
                throw CliException.Usage($"--param '{pair}': expected key=value or key:=json");
            }

            if (pair[eq - 1] == ':')
            {
                try
                {
                    obj[pair[..(eq - 1)]] = JsonNode.Parse(pair[(eq + 1)..]);
                }
                catch (JsonException ex)
                {
                    throw CliException.Usage($"--param '{pair}': the value after := is not JSON: {ex.Message}");
                }
            }
            else
            {
                obj[pair[..eq]] = pair[(eq + 1)..];
            }
        }

        return JsonSerializer.SerializeToElement(obj);
    }
}
