namespace Conveyor.Testing;

/// <summary>
/// A real <c>nats-server</c> with JetStream on a free loopback port:
/// <c>nats-server -js -a 127.0.0.1 -p PORT -sd STOREDIR</c>.
/// </summary>
public sealed class NatsServerProcess : ServerProcess
{
    private NatsServerProcess()
        : base("nats-server", "nats-server")
    {
    }

    /// <summary>Client URL, <c>nats://127.0.0.1:PORT</c>.</summary>
    public string Url => $"nats://127.0.0.1:{Port}";

    /// <inheritdoc />
    protected override IEnumerable<string> Arguments => ["-js", "-a", "127.0.0.1", "-p", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-sd", StoreDir];

    /// <summary>Starts a server and waits until it accepts connections.</summary>
    /// <exception cref="InvalidOperationException">nats-server is not installed, exited, or did not listen in time.</exception>
    public static async Task<NatsServerProcess> StartNewAsync(CancellationToken cancellationToken = default)
    {
        var server = new NatsServerProcess();
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
