using Conveyor.Cli;

namespace Conveyor.IntegrationTests;

/// <summary>
/// Runs the <c>conveyor</c> command line in-process with an environment of its own: no variables but the ones given,
/// a fresh home directory (so no config file of the machine's user), and standard input from a string.
/// </summary>
public sealed class CliRunner : IDisposable
{
    private readonly Dictionary<string, string> _variables = new(StringComparer.Ordinal);

    public CliRunner(Uri? server = null)
    {
        Home = Directory.CreateTempSubdirectory("conveyor-cli-home-").FullName;
        Server = server;
    }

    /// <summary>The home directory the CLI sees (its config file is <c>.config/conveyor/config.yaml</c> under it).</summary>
    public string Home { get; }

    /// <summary>Passed as <c>--server</c> first when set.</summary>
    public Uri? Server { get; }

    /// <summary>Transport for the CLI's requests (a fault-injecting handler, a recorder); null for a plain one.</summary>
    public HttpMessageHandler? Handler { get; init; }

    public CliRunner With(string variable, string value)
    {
        _variables[variable] = value;
        return this;
    }

    public async Task<(int Code, string Out, string Err)> RunAsync(params string[] args) => await RunWithInputAsync("", args);

    public async Task<(int Code, string Out, string Err)> RunWithInputAsync(string stdin, params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var environment = new CliEnvironment(name => _variables.GetValueOrDefault(name), () => new StringReader(stdin), Home);
        string[] all = Server is null ? args : ["--server", Server.ToString(), .. args];
        var code = await CliApp.RunAsync(all, stdout, stderr, handler: Handler, environment: environment, cancellationToken: cts.Token);
        return (code, stdout.ToString().Replace("\r\n", "\n", StringComparison.Ordinal), stderr.ToString().Replace("\r\n", "\n", StringComparison.Ordinal));
    }

    public void Dispose() => Directory.Delete(Home, recursive: true);
}
