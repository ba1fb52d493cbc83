namespace Conveyor.Testing;

/// <summary>
/// A real <c>nats-server</c> with JetStream on a free loopback port:
/// <c>nats-server -js -a 127.0.0.1 -p PORT -sd STOREDIR</c>.
/// </summary>
public sealed class NatsServerProcess : ServerProcess
{
    private readonly string[] _extraArguments;

    private NatsServerProcess(IEnumerable<string>? extraArguments = null)
        : base("nats-server", "nats-server")
    {
        _extraArguments = extraArguments?.ToArray() ?? [];
    }

    /// <summary>Client URL, <c>nats://127.0.0.1:PORT</c>.</summary>
    public string Url => $"nats://127.0.0.1:{Port}";

    /// <inheritdoc />
    protected override string ReadyLine => "Server is ready";

    /// <inheritdoc />
    protected override IEnumerable<string> Arguments =>
        ["-js", "-a", "127.0.0.1", "-p", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-sd", StoreDir, .. _extraArguments];

    /// <summary>Starts a server and waits until it accepts connections.</summary>
    /// <exception cref="InvalidOperationException">nats-server is not installed, exited, or did not listen in time.</exception>
    public static Task<NatsServerProcess> StartNewAsync(CancellationToken cancellationToken = default) => StartNewAsync(null, cancellationToken);

    /// <summary>Starts a server with extra command-line arguments (e.g. <c>--user</c>/<c>--pass</c>, <c>--auth</c>, <c>--tls</c>).</summary>
    /// <exception cref="InvalidOperationException">nats-server is not installed, exited, or did not listen in time.</exception>
    public static async Task<NatsServerProcess> StartNewAsync(IEnumerable<string>? extraArguments, CancellationToken cancellationToken = default)
    {
        var server = new NatsServerProcess(extraArguments);
        try
        {
            await server.StartAsync(cancellationToken).ConfigureAwait(false);
            return server;
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }
}
