using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Conveyor.Grains.Runs;

/// <summary>
/// Keeps a Sentinel-managed multiplexer on the current primary. StackExchange.Redis switches on Sentinel's
/// <c>+switch-master</c> only when the new primary is an endpoint it has not seen; after a failover between known
/// nodes (the replica promoted in place) it keeps its old view of who is primary. So whenever the connection fails, is
/// restored, or a write is refused by a demoted primary (<c>READONLY</c>), the roles of every node are re-read until a
/// writable primary is connected again.
/// </summary>
public static partial class RedisFailover
{
    private static readonly TimeSpan RetryPeriod = TimeSpan.FromMilliseconds(500);

    /// <summary>Creates a multiplexer for <paramref name="options"/> that follows failovers (for Orleans' providers).</summary>
    public static async Task<IConnectionMultiplexer> ConnectAsync(ConfigurationOptions options, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        var connection = await ConnectionMultiplexer.ConnectAsync(options).ConfigureAwait(false);
        Follow(connection, options, logger);
        return connection;
    }

    /// <summary>Makes <paramref name="connection"/> re-read the roles of its nodes after failures (Sentinel only).</summary>
    public static void Follow(ConnectionMultiplexer connection, ConfigurationOptions options, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrEmpty(options.ServiceName))
        {
            return;
        }

        var follower = new Follower(connection, logger);
        connection.ConnectionFailed += (_, _) => follower.Kick();
        connection.ConnectionRestored += (_, _) => follower.Kick();
        connection.ErrorMessage += (_, e) =>
        {
            if (e.Message.StartsWith("READONLY", StringComparison.Ordinal))
            {
                follower.Kick();
            }
        };
    }

    private sealed partial class Follower(ConnectionMultiplexer connection, ILogger logger)
    {
        private int _running;

        public void Kick()
        {
            if (Interlocked.Exchange(ref _running, 1) == 0)
            {
                _ = Task.Run(RunAsync);
            }
        }

        private async Task RunAsync()
        {
            try
            {
                // Re-read at least once (a demoted primary may still look connected and writable), then until a
                // primary that is not a replica is connected.
                var rounds = 0;
                do
                {
                    try
                    {
                        await Task.Delay(rounds == 0 ? TimeSpan.FromMilliseconds(50) : RetryPeriod).ConfigureAwait(false);
                        await connection.ConfigureAsync().ConfigureAwait(false);
                    }
                    catch (ObjectDisposedException)
                    {
                        return;
                    }
                    catch (Exception ex) when (ex is RedisException or TimeoutException or InvalidOperationException)
                    {
                        LogReconfigureFailed(logger, ex.Message);
                    }

                    rounds++;
                }
                while (!HasPrimary(connection) && rounds < 600);

                if (connection.GetServers().FirstOrDefault(s => s.IsConnected && !s.IsReplica) is { } primary)
                {
                    LogPrimary(logger, primary.EndPoint);
                }
            }
            finally
            {
                Volatile.Write(ref _running, 0);
            }
        }

        private static bool HasPrimary(ConnectionMultiplexer connection)
        {
            try
            {
                return connection.GetServers().Any(s => s.IsConnected && !s.IsReplica);
            }
            catch (ObjectDisposedException)
            {
                return true;
            }
        }

        [LoggerMessage(Level = LogLevel.Warning, Message = "Re-reading the Redis topology failed: {Reason}")]
        private static partial void LogReconfigureFailed(ILogger logger, string reason);

        [LoggerMessage(Level = LogLevel.Information, Message = "Redis primary: {Primary}")]
        private static partial void LogPrimary(ILogger logger, System.Net.EndPoint primary);
    }
}
