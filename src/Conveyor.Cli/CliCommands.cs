using System.CommandLine;
using System.Globalization;
using System.Net;
using Conveyor.Client;

namespace Conveyor.Cli;

/// <summary>
/// The command tree. Each group lives in its own file (<c>CliCommands.&lt;Group&gt;.cs</c>) and is added here; the
/// global options, the connection and the mapping of failures to exit codes are shared.
/// </summary>
internal sealed partial class CliCommands
{
    private const string DefaultServer = "http://127.0.0.1:8080";
    private static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(30);

    // The server sends a heartbeat every 15 s; a followed stream silent for longer than that plus the timeout is dead.
    private static readonly TimeSpan Heartbeat = TimeSpan.FromSeconds(15);

    private readonly CliContext _cli;

    // No default value factories: help prints defaults, they must not depend on the environment, and a key must
    // never appear on screen. Flags, then environment variables, then the context, then defaults.
    private readonly Option<string?> _server = new("--server", "-s")
    {
        Description = $"Conveyor API root (env CONVEYOR_URL; default {DefaultServer})",
        Recursive = true,
    };

    private readonly Option<string?> _apiKey = new("--api-key")
    {
        Description = "API key, sent as 'Authorization: Bearer' (env CONVEYOR_API_KEY)",
        Recursive = true,
    };

    private readonly Option<string?> _apiKeyFile = new("--api-key-file")
    {
        Description = "A file holding the API key (env CONVEYOR_API_KEY_FILE)",
        Recursive = true,
    };

    private readonly Option<string?> _namespace = new("--namespace", "-n")
    {
        Description = "Namespace (env CONVEYOR_NAMESPACE; default: the server's default namespace)",
        Recursive = true,
    };

    private readonly Option<string?> _context = new("--context")
    {
        Description = "A context of the config file (env CONVEYOR_CONTEXT; default: its current-context)",
        Recursive = true,
    };

    private readonly Option<string?> _timeout = new("--timeout")
    {
        Description = "How long a request may take, e.g. 10s, 2m, 0 for no limit (env CONVEYOR_TIMEOUT; default 30s)",
        Recursive = true,
    };

    public CliCommands(CliContext cli)
    {
        _cli = cli;
        Root = new RootCommand(
            "conveyor — drive a Conveyor engine from a terminal: apply, get, describe and delete definitions, pipelines, resources, secrets, keys and namespaces; trigger, watch, cancel and retry runs; read their logs.");
        foreach (var option in new Option[] { _server, _namespace, _context, _apiKey, _apiKeyFile, _timeout })
        {
            Root.Options.Add(option);
        }

        Root.Subcommands.Add(ApplyCommand());
        Root.Subcommands.Add(DiffCommand());
        Root.Subcommands.Add(GetCommand());
        Root.Subcommands.Add(DescribeCommand());
        Root.Subcommands.Add(DeleteCommand());
        Root.Subcommands.Add(CreateCommand());
        Root.Subcommands.Add(RunsCommand());
        Root.Subcommands.Add(LogsCommand());
        Root.Subcommands.Add(ConfigCommand());
        Root.Subcommands.Add(CompletionCommand());
    }

    public RootCommand Root { get; }

    private TextWriter Out => _cli.Out;

    private TextWriter Err => _cli.Err;

    /// <summary>Where to connect and as whom, from flags, environment variables, the config file's context and defaults.</summary>
    private Connection Resolve(ParseResult parse)
    {
        var env = _cli.Environment;
        CliConfig? config = null;
        CliConfig Config() => config ??= CliConfig.Load(env);

        var contextName = parse.GetValue(_context) ?? env.Get("CONVEYOR_CONTEXT");
        ContextEntry? context = null;
        if (contextName is not null)
        {
            context = Config().Contexts.GetValueOrDefault(contextName)
                ?? throw CliException.Usage($"no context '{contextName}' in {Config().Path} (see 'conveyor config get-contexts')");
        }
        else if (CliConfig.Exists(env) && Config().CurrentContext is { } current)
        {
            context = Config().Contexts.GetValueOrDefault(current)
                ?? throw CliException.Usage($"current-context '{current}' of {Config().Path} names no context");
        }

        var server = parse.GetValue(_server) ?? env.Get("CONVEYOR_URL") ?? context?.Server ?? DefaultServer;
        if (!Uri.TryCreate(server, UriKind.Absolute, out var root) || root.Scheme is not ("http" or "https"))
        {
            throw CliException.Usage($"--server '{server}' is not an http(s) URL");
        }

        var ns = parse.GetValue(_namespace) ?? env.Get("CONVEYOR_NAMESPACE") ?? context?.Namespace;
        var key = parse.GetValue(_apiKey)
            ?? ReadKeyFile(parse.GetValue(_apiKeyFile), "--api-key-file")
            ?? env.Get("CONVEYOR_API_KEY")
            ?? ReadKeyFile(env.Get("CONVEYOR_API_KEY_FILE"), "CONVEYOR_API_KEY_FILE")
            ?? ReadKeyFile(context?.KeyFile is { } f ? Config().ResolvePath(f) : null, $"key-file of context '{contextName ?? Config().CurrentContext}'");
        var timeoutText = parse.GetValue(_timeout) ?? env.Get("CONVEYOR_TIMEOUT") ?? context?.Timeout;
        var timeout = DefaultTimeout;
        if (timeoutText is not null && !Durations.TryParse(timeoutText, out timeout))
        {
            throw CliException.Usage($"timeout '{timeoutText}' is not a duration (30s, 2m, 1h, 500ms, or 0 for none)");
        }

        return new Connection(root, ns, key, timeout);
    }

    private string? ReadKeyFile(string? path, string source)
    {
        if (path is null)
        {
            return null;
        }

        path = CliConfig.ExpandHome(path, _cli.Environment);
        try
        {
            var key = File.ReadAllText(path).Trim();
            return key.Length > 0 ? key : throw CliException.Usage($"{source}: {path} is empty");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw CliException.Usage($"{source}: cannot read {path}: {ex.Message}");
        }
    }

    /// <summary>Runs a command body with a client for the global options, turning failures into one stderr line and an exit code.</summary>
    private async Task<int> Execute(ParseResult parse, Func<ConveyorClient, Task<int>> body)
    {
        Connection? connection = null;
        try
        {
            connection = Resolve(parse);
            using var http = _cli.Handler is null ? new HttpClient() : new HttpClient(_cli.Handler, disposeHandler: false);
            http.Timeout = connection.Timeout > TimeSpan.Zero ? connection.Timeout : Timeout.InfiniteTimeSpan;
            var client = new ConveyorClient(http, connection.Server)
            {
                ApiKey = connection.ApiKey,
                Namespace = connection.Namespace,
                StreamIdleTimeout = connection.Timeout > TimeSpan.Zero ? Heartbeat + connection.Timeout : Timeout.InfiniteTimeSpan,
            };
            return await body(client).ConfigureAwait(false);
        }
        catch (CliException ex)
        {
            await Err.WriteLineAsync("error: " + ex.Message).ConfigureAwait(false);
            return ex.ExitCode;
        }
        catch (ManifestException ex)
        {
            await Err.WriteLineAsync("error: " + ex.Message).ConfigureAwait(false);
            return ExitCodes.Usage;
        }
        catch (ConveyorApiException ex)
        {
            await Err.WriteLineAsync("error: " + Describe(ex)).ConfigureAwait(false);
            return ExitCodes.ApiError;
        }
        catch (ConveyorStreamInterruptedException ex)
        {
            await Err.WriteLineAsync("error: " + ex.Message.TrimEnd('.') + (ex.InnerException is { } inner ? ": " + inner.Message : "")).ConfigureAwait(false);
            return ExitCodes.Unreachable;
        }
        catch (TaskCanceledException ex) when (ex.InnerException is TimeoutException && connection is not null)
        {
            await Err.WriteLineAsync($"error: Conveyor at {connection.Server} did not answer within {Durations.Format(connection.Timeout)} (--timeout)").ConfigureAwait(false);
            return ExitCodes.Unreachable;
        }
        catch (HttpRequestException ex)
        {
            await Err.WriteLineAsync($"error: cannot reach Conveyor at {connection?.Server.ToString() ?? parse.GetValue(_server)}: {ex.Message}").ConfigureAwait(false);
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
        HttpStatusCode.MethodNotAllowed => "Method Not Allowed",
        HttpStatusCode.Conflict => "Conflict",
        HttpStatusCode.RequestEntityTooLarge => "Payload Too Large",
        HttpStatusCode.UnsupportedMediaType => "Unsupported Media Type",
        HttpStatusCode.UnprocessableEntity => "Unprocessable Entity",
        HttpStatusCode.TooManyRequests => "Too Many Requests",
        HttpStatusCode.NotImplemented => "Not Implemented",
        HttpStatusCode.ServiceUnavailable => "Service Unavailable",
        _ => ((int)status).ToString(CultureInfo.InvariantCulture),
    };

    /// <summary>Where and how to connect.</summary>
    private sealed record Connection(Uri Server, string? Namespace, string? ApiKey, TimeSpan Timeout);
}
