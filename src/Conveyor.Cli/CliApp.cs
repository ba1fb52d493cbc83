using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Conveyor.Contracts;
using Conveyor.Client;

namespace Conveyor.Cli;

/// <summary>
/// The <c>conveyor</c> command line. Every command talks to the HTTP API through the SDK's <see cref="ConveyorClient"/>;
/// errors are one line on stderr and an exit code from <see cref="ExitCodes"/>.
/// </summary>
internal static class CliApp
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>Runs the command line <paramref name="args"/>.</summary>
    /// <param name="args">Arguments.</param>
    /// <param name="stdout">Where results go.</param>
    /// <param name="stderr">Where errors go.</param>
    /// <param name="interactive">A terminal: <c>runs watch</c> redraws in place instead of printing each change.</param>
    /// <param name="handler">HTTP transport (tests); null uses a default one.</param>
    /// <param name="cancellationToken">Stops the command.</param>
    /// <returns>The exit code.</returns>
    public static async Task<int> RunAsync(
        string[] args, TextWriter stdout, TextWriter stderr, bool interactive = false, HttpMessageHandler? handler = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(args);
        var app = new Commands(stdout, stderr, interactive, handler);
        var parse = app.Root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var error in parse.Errors)
            {
                await stderr.WriteLineAsync("error: " + error.Message).ConfigureAwait(false);
            }

            await stderr.WriteLineAsync("run 'conveyor --help' for usage").ConfigureAwait(false);
            return ExitCodes.Usage;
        }

        return await parse.InvokeAsync(new InvocationConfiguration { Output = stdout, Error = stderr }, cancellationToken).ConfigureAwait(false);
    }

    private sealed class Commands
    {
        private readonly TextWriter _out;
        private readonly TextWriter _err;
        private readonly bool _interactive;
        private readonly HttpMessageHandler? _handler;

        private readonly Option<string> _server = new("--server", "-s")
        {
            Description = "Conveyor API root (env CONVEYOR_URL; default http://127.0.0.1:8080)",
            Recursive = true,
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable("CONVEYOR_URL") is { Length: > 0 } url ? url : "http://127.0.0.1:8080",
        };

        private readonly Option<string?> _apiKey = new("--api-key")
        {
            // No default value factory: help prints defaults, and a key must never appear on screen.
            Description = "API key, sent as 'Authorization: Bearer' (env CONVEYOR_API_KEY)",
            Recursive = true,
        };

        private readonly Option<string?> _namespace = new("--namespace", "-n")
        {
            Description = "Namespace (env CONVEYOR_NAMESPACE; default: the server's default namespace)",
            Recursive = true,
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable("CONVEYOR_NAMESPACE") is { Length: > 0 } ns ? ns : null,
        };

        public Commands(TextWriter stdout, TextWriter stderr, bool interactive, HttpMessageHandler? handler)
        {
            _out = stdout;
            _err = stderr;
            _interactive = interactive;
            _handler = handler;
            Root = new RootCommand("conveyor — drive a Conveyor engine from a terminal: apply definitions, pipelines and resources; trigger, watch, cancel and retry runs; read their logs.");
            Root.Options.Add(_server);
            Root.Options.Add(_apiKey);
            Root.Options.Add(_namespace);
            Root.Subcommands.Add(ApplyCommand());
            Root.Subcommands.Add(GetCommand());
            Root.Subcommands.Add(RunsCommand());
            Root.Subcommands.Add(LogsCommand());
        }

        public RootCommand Root { get; }

        private Command ApplyCommand()
        {
            var file = new Option<string[]>("--file", "-f")
            {
                Description = "A YAML or JSON file, or a directory of them (repeatable)",
                Required = true,
                AllowMultipleArgumentsPerToken = false,
            };
            var command = new Command("apply", "Create or update resource definitions, pipelines and resources from YAML (multi-document) or JSON files") { file };
            command.SetAction((parse, ct) => Execute(parse, async client =>
            {
                var manifests = Manifests.InApplyOrder(parse.GetValue(file)!.SelectMany(Manifests.Load).ToList());
                foreach (var m in manifests)
                {
                    await ApplyAsync(client, m, ct).ConfigureAwait(false);
                }

                return ExitCodes.Ok;
            }));
            return command;
        }

        private async Task ApplyAsync(ConveyorClient client, Manifest m, CancellationToken ct)
        {
            var body = JsonSerializer.SerializeToElement(m.Body);
            switch (m.Kind)
            {
                case ManifestKind.ResourceDefinition:
                    var definition = await client.SendJsonAsync(HttpMethod.Post, "resource-definitions/apply", body, ct).ConfigureAwait(false);
                    await _out.WriteLineAsync($"resource-definition/{m.Name} {(IsUnchanged(definition) ? "unchanged" : "applied")}").ConfigureAwait(false);
                    break;
                case ManifestKind.Pipeline:
                    var pipeline = await client.SendJsonAsync(HttpMethod.Post, "pipelines", body, ct).ConfigureAwait(false);
                    await _out.WriteLineAsync($"pipeline/{m.Name} {(IsUnchanged(pipeline) ? "unchanged" : "applied")}").ConfigureAwait(false);
                    break;
                default:
                    var type = m.Body["resource"]!.GetValue<string>();
                    try
                    {
                        var created = await client.SendJsonAsync(HttpMethod.Post, "resources", body, ct).ConfigureAwait(false);
                        // Without a pipeline there is no run: the id only names the drivers' log of the announcement.
                        var runId = created is { } c && c.TryGetProperty("runid", out var r) && r.ValueKind == JsonValueKind.String && r.GetString() is { Length: > 0 } id
                            && Guid.TryParse(id, out var g) && g != Guid.Empty
                            ? m.Body["pipeline"] is { } p && p.GetValueKind() == JsonValueKind.String && p.GetValue<string>().Length > 0
                                ? $" (run {id})"
                                : $" (announced to drivers; log id {id})"
                            : "";
                        await _out.WriteLineAsync($"resource/{type}/{m.Name} created{runId}").ConfigureAwait(false);
                    }
                    catch (ConveyorApiException ex) when (ex.Status == HttpStatusCode.Conflict)
                    {
                        var updated = await client.SendJsonAsync(HttpMethod.Put, $"resources/{Uri.EscapeDataString(type)}/{Uri.EscapeDataString(m.Name)}", body, ct).ConfigureAwait(false);
                        // The server keeps a resource's version in metadata["version"], as the original does.
                        var version = updated is { } u && u.TryGetProperty("metadata", out var md) && md.ValueKind == JsonValueKind.Object
                            && md.TryGetProperty("version", out var v) ? $" (version {v.GetString()})" : "";
                        await _out.WriteLineAsync($"resource/{type}/{m.Name} {(IsUnchanged(updated) ? "unchanged" : "updated")}{version}").ConfigureAwait(false);
                    }

                    break;
            }
        }

        /// <summary>Whether the server answered that the write changed nothing (no new revision or version).</summary>
        private static bool IsUnchanged(JsonElement? response) =>
            response is { ValueKind: JsonValueKind.Object } r && r.TryGetProperty("unchanged", out var u) && u.ValueKind == JsonValueKind.True;

        private Command GetCommand()
        {
            var get = new Command("get", "List resource definitions, pipelines or resources, by name (every page)");
            var prefix = new Option<string?>("--prefix") { Description = "Only names that start with this", Recursive = true };

            var definitions = new Command("definitions", "List resource definitions");
            definitions.SetAction((parse, ct) => Execute(parse, async client =>
            {
                await foreach (var d in client.ListAllResourceDefinitionsAsync(parse.GetValue(prefix), ct).ConfigureAwait(false))
                {
                    await _out.WriteLineAsync($"resource-definition/{d.Name}").ConfigureAwait(false);
                }

                return ExitCodes.Ok;
            }));
            get.Subcommands.Add(definitions);

            var forType = new Option<string?>("--resource") { Description = "Only pipelines of this resource type" };
            var pipelines = new Command("pipelines", "List pipelines") { forType };
            pipelines.SetAction((parse, ct) => Execute(parse, async client =>
            {
                await foreach (var p in client.ListAllPipelinesAsync(parse.GetValue(prefix), parse.GetValue(forType), ct).ConfigureAwait(false))
                {
                    await _out.WriteLineAsync($"pipeline/{p.Name} (resource {p.Resource}, revision {p.Revision})").ConfigureAwait(false);
                }

                return ExitCodes.Ok;
            }));
            get.Subcommands.Add(pipelines);

            var type = new Argument<string?>("type") { Description = "Only resources of this type", Arity = ArgumentArity.ZeroOrOne };
            var byPipeline = new Option<string?>("--pipeline") { Description = "Only resources that name this pipeline" };
            var resources = new Command("resources", "List resources (of one type, or of every type)") { type, byPipeline };
            resources.SetAction((parse, ct) => Execute(parse, async client =>
            {
                if (parse.GetValue(type) is null && parse.GetValue(prefix) is not null)
                {
                    throw new UsageException("--prefix needs a resource type");
                }

                await foreach (var r in client.ListAllResourcesAsync(parse.GetValue(type), parse.GetValue(prefix), parse.GetValue(byPipeline), ct).ConfigureAwait(false))
                {
                    var version = r.Metadata is { } m && m.TryGetValue("version", out var v) ? $" (version {v})" : "";
                    await _out.WriteLineAsync($"resource/{r.ResourceType}/{r.Name}{version}").ConfigureAwait(false);
                }

                return ExitCodes.Ok;
            }));
            get.Subcommands.Add(resources);
            get.Options.Add(prefix);
            return get;
        }

        private Command RunsCommand()
        {
            var runs = new Command("runs", "Trigger, list, show, watch, cancel and retry runs");

            var pipeline = new Option<string?>("--pipeline", "-p") { Description = "Only this pipeline's runs" };
            var status = new Option<RunStatus?>("--status") { Description = "Only runs in this status" };
            var limit = new Option<int>("--limit") { Description = "At most this many runs (1-100)", DefaultValueFactory = _ => 20 };
            var json = new Option<bool>("--json") { Description = "Print the API's JSON" };
            var list = new Command("list", "List runs, newest first") { pipeline, status, limit, json };
            list.SetAction((parse, ct) => Execute(parse, async client =>
            {
                var page = await client.ListRunsAsync(parse.GetValue(pipeline), parse.GetValue(status), parse.GetValue(limit), cancellationToken: ct).ConfigureAwait(false);
                await _out.WriteAsync(parse.GetValue(json) ? JsonSerializer.Serialize(page.Items, Indented) + Environment.NewLine : RunView.Table(page.Items)).ConfigureAwait(false);
                return ExitCodes.Ok;
            }));
            runs.Subcommands.Add(list);

            var triggerPipeline = new Argument<string>("pipeline") { Description = "The pipeline to run" };
            var triggerResource = new Option<string>("--resource", "-r") { Description = "The existing resource (of the pipeline's type) to run it for", Required = true };
            var priority = new Option<int?>("--priority") { Description = "1 (lowest) to 5 (highest); default 3" };
            var idempotencyKey = new Option<string?>("--idempotency-key") { Description = "Repeating a trigger with the same key returns the first run instead of starting another" };
            var triggerWatch = new Option<bool>("--watch", "-w") { Description = "Then watch the run until it ends" };
            var trigger = new Command("trigger", "Start a run of a pipeline for an existing resource") { triggerPipeline, triggerResource, priority, idempotencyKey, triggerWatch };
            trigger.SetAction((parse, ct) => Execute(parse, async client =>
            {
                var run = await client.TriggerRunAsync(
                    parse.GetValue(triggerPipeline)!, parse.GetValue(triggerResource)!, parse.GetValue(priority), idempotencyKey: parse.GetValue(idempotencyKey), cancellationToken: ct).ConfigureAwait(false);
                await _out.WriteLineAsync($"run {run.Id} {run.Status}").ConfigureAwait(false);
                return parse.GetValue(triggerWatch) ? await WatchAsync(client, run.Id, TimeSpan.FromSeconds(0.5), ct).ConfigureAwait(false) : ExitCodes.Ok;
            }));
            runs.Subcommands.Add(trigger);

            var showId = RunIdArgument();
            var showJson = new Option<bool>("--json") { Description = "Print the API's JSON" };
            var show = new Command("show", "Show a run: its steps, attempts and messages") { showId, showJson };
            show.SetAction((parse, ct) => Execute(parse, async client =>
            {
                var id = ParseRunId(parse.GetValue(showId)!);
                if (parse.GetValue(showJson))
                {
                    var raw = await client.SendJsonAsync(HttpMethod.Get, $"runs/{id}", cancellationToken: ct).ConfigureAwait(false);
                    await _out.WriteLineAsync(JsonSerializer.Serialize(raw, Indented)).ConfigureAwait(false);
                    return ExitCodes.Ok;
                }

                var run = await client.GetRunAsync(id, ct).ConfigureAwait(false);
                await _out.WriteAsync(RunView.Render(run, DateTimeOffset.UtcNow, withClock: true)).ConfigureAwait(false);
                return ExitCodes.Ok;
            }));
            runs.Subcommands.Add(show);

            var watchId = RunIdArgument();
            var interval = new Option<double>("--interval") { Description = "Seconds between refreshes", DefaultValueFactory = _ => 0.5 };
            var watch = new Command("watch", "Follow a run's steps live until it ends; exit code 1 when it does not succeed") { watchId, interval };
            watch.SetAction((parse, ct) => Execute(parse, client =>
                WatchAsync(client, ParseRunId(parse.GetValue(watchId)!), TimeSpan.FromSeconds(Math.Max(0.05, parse.GetValue(interval))), ct)));
            runs.Subcommands.Add(watch);

            var cancelId = RunIdArgument();
            var reason = new Option<string?>("--reason") { Description = "Why (shown on the run and sent to drivers)" };
            var cancel = new Command("cancel", "Cancel a pending or running run") { cancelId, reason };
            cancel.SetAction((parse, ct) => Execute(parse, async client =>
            {
                var run = await client.CancelRunAsync(ParseRunId(parse.GetValue(cancelId)!), parse.GetValue(reason), ct).ConfigureAwait(false);
                await _out.WriteLineAsync($"run {run.Id} {run.Status}").ConfigureAwait(false);
                return ExitCodes.Ok;
            }));
            runs.Subcommands.Add(cancel);

            var retryId = RunIdArgument();
            var retryWatch = new Option<bool>("--watch", "-w") { Description = "Then watch the run until it ends" };
            var retry = new Command("retry", "Re-run the steps of a failed, cancelled or timed-out run that did not succeed") { retryId, retryWatch };
            retry.SetAction((parse, ct) => Execute(parse, async client =>
            {
                var run = await client.RetryRunAsync(ParseRunId(parse.GetValue(retryId)!), ct).ConfigureAwait(false);
                await _out.WriteLineAsync($"run {run.Id} {run.Status} (run attempt {run.RunAttempt})").ConfigureAwait(false);
                return parse.GetValue(retryWatch) ? await WatchAsync(client, run.Id, TimeSpan.FromSeconds(0.5), ct).ConfigureAwait(false) : ExitCodes.Ok;
            }));
            runs.Subcommands.Add(retry);
            return runs;
        }

        private Command LogsCommand()
        {
            var runId = RunIdArgument();
            var follow = new Option<bool>("--follow", "-f") { Description = "Keep printing new lines until the run ends" };
            var step = new Option<string?>("--step") { Description = "Only this step's lines" };
            var driver = new Option<string?>("--driver") { Description = "Only this driver's lines" };
            var logs = new Command("logs", "Print a run's log") { runId, follow, step, driver };
            logs.SetAction((parse, ct) => Execute(parse, async client =>
            {
                var id = ParseRunId(parse.GetValue(runId)!).ToString();
                var stepFilter = parse.GetValue(step);
                var driverFilter = parse.GetValue(driver);
                if (parse.GetValue(follow))
                {
                    await foreach (var line in client.FollowRunLogsAsync(id, cancellationToken: ct).ConfigureAwait(false))
                    {
                        if ((stepFilter is null || (line.Labels?.GetValueOrDefault("step") == stepFilter)) && (driverFilter is null || line.Driver == driverFilter))
                        {
                            await _out.WriteLineAsync(Format(line)).ConfigureAwait(false);
                        }
                    }

                    return ExitCodes.Ok;
                }

                string? cursor = null;
                do
                {
                    var page = await client.GetRunLogsAsync(id, driverFilter, stepFilter, cursor, 1000, ct).ConfigureAwait(false);
                    foreach (var line in page.Items)
                    {
                        await _out.WriteLineAsync(Format(line)).ConfigureAwait(false);
                    }

                    cursor = page.Items.Count == 0 ? null : page.NextCursor;
                }
                while (cursor is not null);
                return ExitCodes.Ok;
            }));
            return logs;
        }

        private async Task<int> WatchAsync(ConveyorClient client, Guid runId, TimeSpan interval, CancellationToken ct)
        {
            var lastKey = "";
            var drawnLines = 0;
            while (true)
            {
                var run = await client.GetRunAsync(runId, ct).ConfigureAwait(false);
                if (_interactive)
                {
                    var frame = RunView.Render(run, DateTimeOffset.UtcNow, withClock: true);
                    if (drawnLines > 0)
                    {
                        // Back to the top of the previous frame, then overwrite it line by line.
                        await _out.WriteAsync($"\u001b[{drawnLines}A").ConfigureAwait(false);
                    }

                    await _out.WriteAsync(frame.Replace(Environment.NewLine, "\u001b[K" + Environment.NewLine, StringComparison.Ordinal)).ConfigureAwait(false);
                    drawnLines = frame.Split(Environment.NewLine).Length - 1;
                }
                else
                {
                    // Not a terminal: print a frame only when a state changed, without the ticking clock.
                    var frame = RunView.Render(run, DateTimeOffset.UtcNow, withClock: false);
                    if (frame != lastKey)
                    {
                        await _out.WriteAsync(frame).ConfigureAwait(false);
                        await _out.WriteLineAsync().ConfigureAwait(false);
                        lastKey = frame;
                    }
                }

                await _out.FlushAsync(ct).ConfigureAwait(false);
                if (run.IsFinished)
                {
                    await _out.WriteLineAsync($"run {run.Id} {run.Status}").ConfigureAwait(false);
                    return run.Status == RunStatus.Succeeded ? ExitCodes.Ok : ExitCodes.RunFailed;
                }

                await Task.Delay(interval, ct).ConfigureAwait(false);
            }
        }

        private static Argument<string> RunIdArgument() => new("run") { Description = "Run id (a UUID)" };

        private static Guid ParseRunId(string text) =>
            Guid.TryParse(text, out var id) ? id : throw new UsageException($"'{text}' is not a run id (a UUID such as 3f2b8c1e-…)");

        private static string Format(LogLine line)
        {
            var step = line.Labels?.GetValueOrDefault("step");
            return $"{line.Timestamp} [{line.Driver}{(string.IsNullOrEmpty(step) ? "" : "/" + step)}] {line.Message}";
        }

        /// <summary>Runs a command body with a client for the global options, turning failures into one stderr line and an exit code.</summary>
        private async Task<int> Execute(ParseResult parse, Func<ConveyorClient, Task<int>> body)
        {
            var server = parse.GetValue(_server)!;
            try
            {
                if (!Uri.TryCreate(server, UriKind.Absolute, out var root) || root.Scheme is not ("http" or "https"))
                {
                    throw new UsageException($"--server '{server}' is not an http(s) URL");
                }

                if (parse.GetValue(_namespace) is { } ns)
                {
                    root = new Uri(root.AbsoluteUri.TrimEnd('/') + "/namespaces/" + Uri.EscapeDataString(ns) + "/");
                }

                using var http = _handler is null ? new HttpClient() : new HttpClient(_handler, disposeHandler: false);
                http.Timeout = Timeout.InfiniteTimeSpan;
                if ((parse.GetValue(_apiKey) ?? Environment.GetEnvironmentVariable("CONVEYOR_API_KEY")) is { Length: > 0 } key)
                {
                    http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
                }

                return await body(new ConveyorClient(http, root)).ConfigureAwait(false);
            }
            catch (UsageException ex)
            {
                await _err.WriteLineAsync("error: " + ex.Message).ConfigureAwait(false);
                return ExitCodes.Usage;
            }
            catch (ManifestException ex)
            {
                await _err.WriteLineAsync("error: " + ex.Message).ConfigureAwait(false);
                return ExitCodes.Usage;
            }
            catch (ConveyorApiException ex)
            {
                await _err.WriteLineAsync("error: " + Describe(ex)).ConfigureAwait(false);
                return ExitCodes.ApiError;
            }
            catch (HttpRequestException ex)
            {
                await _err.WriteLineAsync($"error: cannot reach Conveyor at {server}: {ex.Message}").ConfigureAwait(false);
                return ExitCodes.Unreachable;
            }
        }

        /// <summary>The problem details in one line: status, what went wrong, and each field at fault.</summary>
        private static string Describe(ConveyorApiException ex)
        {
            var what = ex.Detail ?? ex.Error ?? ex.Title ?? ex.Message;
            var line = $"{(int)ex.Status} {ReasonPhrase(ex.Status)}: {what.ReplaceLineEndings(" ")}";
            var fields = ex.Errors.Where(e => !what.Contains(string.Join(", ", e.Value), StringComparison.Ordinal)).ToList();
            if (fields.Count > 0)
            {
                line += " (" + string.Join("; ", fields.Select(e => $"{e.Key}: {string.Join(", ", e.Value)}")) + ")";
            }

            return line;
        }

        private static string ReasonPhrase(HttpStatusCode status) => status switch
        {
            HttpStatusCode.BadRequest => "Bad Request",
            HttpStatusCode.Unauthorized => "Unauthorized",
            HttpStatusCode.Forbidden => "Forbidden",
            HttpStatusCode.NotFound => "Not Found",
            HttpStatusCode.Conflict => "Conflict",
            HttpStatusCode.RequestEntityTooLarge => "Payload Too Large",
            HttpStatusCode.UnsupportedMediaType => "Unsupported Media Type",
            HttpStatusCode.UnprocessableEntity => "Unprocessable Entity",
            HttpStatusCode.TooManyRequests => "Too Many Requests",
            HttpStatusCode.ServiceUnavailable => "Service Unavailable",
            _ => ((int)status).ToString(CultureInfo.InvariantCulture),
        };
    }

    private sealed class UsageException(string message) : Exception(message);
}
