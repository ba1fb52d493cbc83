using System.CommandLine;

namespace Conveyor.Cli;

/// <summary>
/// The <c>conveyor</c> command line. Every command talks to the HTTP API through <see cref="Conveyor.Client.ConveyorClient"/>;
/// errors are one line on stderr and an exit code from <see cref="ExitCodes"/>.
/// </summary>
internal static class CliApp
{
    /// <summary>Runs the command line <paramref name="args"/>.</summary>
    /// <param name="args">Arguments.</param>
    /// <param name="stdout">Where results go.</param>
    /// <param name="stderr">Where errors go.</param>
    /// <param name="interactive">A terminal: <c>runs watch</c> redraws in place instead of printing each change.</param>
    /// <param name="handler">HTTP transport (tests); null uses a default one.</param>
    /// <param name="environment">Environment variables, standard input and home directory; null uses the process's.</param>
    /// <param name="cancellationToken">Stops the command.</param>
    /// <returns>The exit code.</returns>
    public static async Task<int> RunAsync(
        string[] args,
        TextWriter stdout,
        TextWriter stderr,
        bool interactive = false,
        HttpMessageHandler? handler = null,
        CliEnvironment? environment = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(args);
        var commands = new CliCommands(new CliContext(stdout, stderr, interactive, handler, environment ?? CliEnvironment.Process));
        // No response files: '@latest' names a run, not a file of arguments.
        var parse = commands.Root.Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = null });
        if (parse.Errors.Count > 0 && !parse.Tokens.Any(t => t.Type == System.CommandLine.Parsing.TokenType.Directive))
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

    /// <summary>The root command, for the generated reference (every command's help).</summary>
    internal static RootCommand BuildRoot(TextWriter stdout, TextWriter stderr) =>
        new CliCommands(new CliContext(stdout, stderr, false, null, CliEnvironment.Process)).Root;
}

/// <summary>What a command needs from the process: environment variables, standard input and the home directory.</summary>
/// <param name="GetVariable">Reads an environment variable (null when unset).</param>
/// <param name="StandardInput">Where <c>-f -</c> reads from.</param>
/// <param name="HomeDirectory">The user's home, for <c>~</c> and the default config file.</param>
internal sealed record CliEnvironment(Func<string, string?> GetVariable, Func<TextReader> StandardInput, string HomeDirectory)
{
    /// <summary>The running process's.</summary>
    public static CliEnvironment Process { get; } = new(
        Environment.GetEnvironmentVariable,
        () => Console.In,
        Environment.GetFolderPath(Environment.SpecialFolder.UserProfile));

    /// <summary>A variable, or null when it is unset or empty.</summary>
    public string? Get(string name) => GetVariable(name) is { Length: > 0 } value ? value : null;
}

/// <summary>The writers and transport the commands share.</summary>
internal sealed record CliContext(TextWriter Out, TextWriter Err, bool Interactive, HttpMessageHandler? Handler, CliEnvironment Environment);

/// <summary>A failure with its own exit code and a one-line message.</summary>
internal sealed class CliException(int exitCode, string message) : Exception(message)
{
    /// <summary>The exit code to end with.</summary>
    public int ExitCode { get; } = exitCode;

    /// <summary>A bad command line or input (exit code 2).</summary>
    public static CliException Usage(string message) => new(ExitCodes.Usage, message);

    /// <summary>The server has no such thing (exit code 3, as a 404 would be).</summary>
    public static CliException NotFound(string message) => new(ExitCodes.ApiError, message);
}
