using System.Globalization;

namespace Conveyor.Testing;

/// <summary>
/// A real <c>redis-server</c> on a free loopback port, with an append-only file in its data directory so state survives
/// <see cref="ServerProcess.RestartAsync"/>.
/// </summary>
public sealed class RedisServerProcess : ServerProcess
{
    private readonly string[] _extraArguments;

    private RedisServerProcess(IEnumerable<string>? extraArguments = null)
        : base("redis-server", "redis-server")
    {
        _extraArguments = extraArguments?.ToArray() ?? [];
    }

    /// <summary>StackExchange.Redis connection string, <c>127.0.0.1:PORT</c>.</summary>
    public string ConnectionString => $"127.0.0.1:{Port}";

    /// <inheritdoc />
    protected override string ReadyLine => "Ready to accept connections";

    /// <inheritdoc />
    protected override IEnumerable<string> Arguments =>
    [
        "--port", Port.ToString(CultureInfo.InvariantCulture),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "yes",
        "--dir", StoreDir,
        "--daemonize", "no",
        .. _extraArguments,
    ];

    /// <summary>Starts a server and waits until it accepts connections.</summary>
    /// <exception cref="InvalidOperationException">redis-server is not installed, exited, or did not listen in time.</exception>
    public static Task<RedisServerProcess> StartNewAsync(CancellationToken cancellationToken = default) => StartNewAsync(null, cancellationToken);

    /// <summary>Starts a server with extra arguments (e.g. <c>--replicaof 127.0.0.1 PORT</c>).</summary>
    /// <exception cref="InvalidOperationException">redis-server is not installed, exited, or did not listen in time.</exception>
    public static async Task<RedisServerProcess> StartNewAsync(IEnumerable<string>? extraArguments, CancellationToken cancellationToken = default)
    {
        var server = new RedisServerProcess(extraArguments);
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
