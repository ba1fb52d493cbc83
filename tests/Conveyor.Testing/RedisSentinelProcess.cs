using System.Globalization;

namespace Conveyor.Testing;

/// <summary>
/// A real Redis Sentinel (Debian's <c>redis-sentinel</c>) on a free loopback port that monitors one primary under a
/// service name. Sentinel rewrites its configuration file as it learns the topology, so the file lives in its own
/// data directory and survives a restart.
/// </summary>
public sealed class RedisSentinelProcess : ServerProcess
{
    private readonly string _config;

    private RedisSentinelProcess(string serviceName, int primaryPort, TimeSpan downAfter)
        : base("redis-sentinel", "redis-sentinel")
    {
        _config = Path.Combine(StoreDir, "sentinel.conf");
        File.WriteAllText(_config, string.Join('\n',
        [
            FormattableString.Invariant($"port {Port}"),
            "bind 127.0.0.1",
            "daemonize no",
            $"dir {StoreDir}",
            FormattableString.Invariant($"sentinel monitor {serviceName} 127.0.0.1 {primaryPort} 2"),
            FormattableString.Invariant($"sentinel down-after-milliseconds {serviceName} {(int)downAfter.TotalMilliseconds}"),
            FormattableString.Invariant($"sentinel failover-timeout {serviceName} 10000"),
            $"sentinel parallel-syncs {serviceName} 2",
            "",
        ]));
    }

    /// <summary>The sentinel's address, <c>127.0.0.1:PORT</c>.</summary>
    public string Address => string.Create(CultureInfo.InvariantCulture, $"127.0.0.1:{Port}");

    /// <inheritdoc />
    protected override IEnumerable<string> Arguments => [_config];

    /// <inheritdoc />
    protected override string ReadyLine => "+monitor master";

    /// <summary>Starts a sentinel that monitors the primary on <paramref name="primaryPort"/> as <paramref name="serviceName"/>.</summary>
    /// <exception cref="InvalidOperationException">redis-sentinel is not installed, exited, or did not listen in time.</exception>
    public static async Task<RedisSentinelProcess> StartNewAsync(string serviceName, int primaryPort, TimeSpan downAfter, CancellationToken cancellationToken = default)
    {
        var server = new RedisSentinelProcess(serviceName, primaryPort, downAfter);
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
