using System.Globalization;
using System.Net;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;

namespace Conveyor.Grains.Runs;

/// <summary>
/// The silo's Redis connection: one multiplexer that Conveyor's own services, the Orleans grain storage and the
/// reminder table share (cluster membership has its own, see <see cref="RedisFailover"/>), so that a replica
/// acknowledgement after a write also covers every write sent before it on the same connection. With a Sentinel
/// connection string (<c>serviceName=…</c>) it follows failovers; with <see cref="ReplicaAcks"/> above 0, a write
/// made through <see cref="WriteAsync{TState, TResult}"/> counts only once that many replicas hold it.
/// </summary>
public sealed partial class ConveyorRedis : IAsyncDisposable
{
    private static readonly TimeSpan CheckCacheTime = TimeSpan.FromSeconds(5);
    private readonly ConfigurationOptions _options;
    private readonly ConveyorRedisOptions _settings;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private readonly Dictionary<EndPoint, ReplicaWaitBatcher> _waiters = [];
    private ConnectionMultiplexer? _connection;
    private (DateTime At, IReadOnlyList<string> Problems)? _lastCheck;
    private bool _configUnavailableLogged;

    /// <summary>A connection with the default settings (no replica acknowledgements unless Sentinel is named).</summary>
    public ConveyorRedis(ConfigurationOptions options)
        : this(options, new ConveyorRedisOptions(), NullLogger<ConveyorRedis>.Instance)
    {
    }

    /// <summary>A connection with explicit write settings.</summary>
    public ConveyorRedis(ConfigurationOptions options, ConveyorRedisOptions settings, ILogger<ConveyorRedis> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(settings);
        // CONFIG GET and INFO (the eviction and replica checks) are "admin" commands to StackExchange.Redis.
        _options = options.Clone();
        _options.AllowAdmin = true;
        _settings = settings;
        _logger = logger ?? NullLogger<ConveyorRedis>.Instance;
        ReplicaAcks = settings.EffectiveReplicaAcks(options);
    }

    /// <summary>Replicas that must confirm a write made through <see cref="WriteAsync{TState, TResult}"/>; 0 = none.</summary>
    public int ReplicaAcks { get; }

    /// <summary>The shared multiplexer, connecting on first use.</summary>
    public async Task<IConnectionMultiplexer> GetMultiplexerAsync()
    {
        if (_connection is { } c)
        {
            return c;
        }

        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_connection is null)
            {
                var connection = await ConnectionMultiplexer.ConnectAsync(_options).ConfigureAwait(false);
                RedisFailover.Follow(connection, _options, _logger);
                _connection = connection;
            }

            return _connection;
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>The database, connecting on first use.</summary>
    public async Task<IDatabase> GetDatabaseAsync() => (await GetMultiplexerAsync().ConfigureAwait(false)).GetDatabase();

    /// <summary>
    /// Runs a write and, when <see cref="ReplicaAcks"/> is above 0, waits until that many replicas of the primary it
    /// went to hold it (and everything written before it on this connection). Throws
    /// <see cref="RedisReplicationException"/> when they do not within the timeout, or when the primary changed
    /// meanwhile: the write may then be lost by a failover, so it must not be acknowledged.
    /// </summary>
    public async Task<TResult> WriteAsync<TState, TResult>(Func<IDatabase, TState, Task<TResult>> write, TState state)
    {
        ArgumentNullException.ThrowIfNull(write);
        var connection = await GetMultiplexerAsync().ConfigureAwait(false);
        var db = connection.GetDatabase();
        if (ReplicaAcks == 0)
        {
            return await write(db, state).ConfigureAwait(false);
        }

        // The primary the write goes to, taken before it is sent: if a failover moves the multiplexer meanwhile, the
        // WAIT below runs against the old primary, which no longer has its replicas (or answers as a replica), and
        // the write counts as failed, which is what it may well be.
        var primary = PrimaryOf(connection)
            ?? throw new RedisReplicationException("no Redis primary is connected (a failover may be under way)");
        var result = await write(db, state).ConfigureAwait(false);
        await ConfirmAsync(connection, primary).ConfigureAwait(false);
        return result;
    }

    /// <summary>
    /// Waits until <see cref="ReplicaAcks"/> replicas hold every write sent so far on this connection to the current
    /// primary. For writes made by others on the shared connection (the Orleans grain storage).
    /// </summary>
    public async Task ConfirmReplicatedAsync(EndPoint primary)
    {
        ArgumentNullException.ThrowIfNull(primary);
        if (ReplicaAcks == 0)
        {
            return;
        }

        await ConfirmAsync(await GetMultiplexerAsync().ConfigureAwait(false), primary).ConfigureAwait(false);
    }

    /// <summary>The endpoint of the connected primary, or null (only meaningful once connected).</summary>
    public EndPoint? CurrentPrimary() => _connection is { } c ? PrimaryOf(c) : null;

    /// <summary>
    /// What makes this Redis unsafe for Conveyor right now, one entry per problem (cached for a few seconds): an
    /// evicting <c>maxmemory-policy</c>, or fewer online replicas than writes wait for. Empty when fine or unknown.
    /// </summary>
    public async Task<IReadOnlyList<string>> CheckAsync(CancellationToken cancellationToken = default)
    {
        if (_lastCheck is { } last && DateTime.UtcNow - last.At < CheckCacheTime)
        {
            return last.Problems;
        }

        var connection = await GetMultiplexerAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
        var problems = new List<string>();
        if (PrimaryOf(connection) is not { } primary)
        {
            problems.Add("no Redis primary is connected");
        }
        else
        {
            var server = connection.GetServer(primary);
            if (_settings.RequireNoEviction && await EvictionPolicyAsync(server).WaitAsync(cancellationToken).ConfigureAwait(false) is { } policy)
            {
                problems.Add(EvictionProblem(policy));
            }

            if (ReplicaAcks > 0)
            {
                var online = await OnlineReplicasAsync(server).WaitAsync(cancellationToken).ConfigureAwait(false);
                if (online < ReplicaAcks)
                {
                    problems.Add($"the Redis primary has {online} online replicas; writes wait for {ReplicaAcks} (Conveyor:Redis:ReplicaAcks), so they fail");
                }
            }
        }

        _lastCheck = (DateTime.UtcNow, problems);
        return problems;
    }

    /// <summary>
    /// The primary's <c>maxmemory-policy</c> when it lets Redis evict keys; null when it is <c>noeviction</c>, when
    /// the check is off, or when the server does not say (<c>CONFIG</c> renamed or not permitted).
    /// </summary>
    public async Task<string?> EvictingPolicyAsync()
    {
        if (!_settings.RequireNoEviction)
        {
            return null;
        }

        var connection = await GetMultiplexerAsync().ConfigureAwait(false);
        return PrimaryOf(connection) is { } primary ? await EvictionPolicyAsync(connection.GetServer(primary)).ConfigureAwait(false) : null;
    }

    /// <summary>The message for an evicting policy.</summary>
    public static string EvictionProblem(string policy) =>
        $"Redis maxmemory-policy is '{policy}', which can evict Conveyor's state (runs, membership, reminders); set it to 'noeviction'";

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_connection is not null)
        {
            await _connection.DisposeAsync().ConfigureAwait(false);
        }

        _lock.Dispose();
    }

    private static EndPoint? PrimaryOf(IConnectionMultiplexer connection)
    {
        foreach (var server in connection.GetServers())
        {
            if (server.IsConnected && !server.IsReplica)
            {
                return server.EndPoint;
            }
        }

        return null;
    }

    private async Task ConfirmAsync(IConnectionMultiplexer connection, EndPoint primary)
    {
        ReplicaWaitBatcher waiter;
        lock (_waiters)
        {
            if (!_waiters.TryGetValue(primary, out waiter!))
            {
                waiter = new ReplicaWaitBatcher(connection.GetServer(primary), ReplicaAcks, _settings.ReplicaAckTimeout);
                _waiters[primary] = waiter;
            }
        }

        long acked;
        try
        {
            acked = await waiter.WaitAsync().ConfigureAwait(false);
        }
        catch (RedisServerException ex)
        {
            // "WAIT cannot be used with replica instances": the primary was demoted meanwhile.
            throw new RedisReplicationException($"Redis {primary} no longer confirms writes as a primary: {ex.Message}");
        }

        if (acked < ReplicaAcks)
        {
            LogNotReplicated(_logger, primary.ToString() ?? "", acked, ReplicaAcks);
            throw new RedisReplicationException(
                $"only {acked} of {ReplicaAcks} Redis replicas confirmed a write within {_settings.ReplicaAckTimeout.TotalMilliseconds:0} ms; it is not acknowledged");
        }
    }

    private async Task<string?> EvictionPolicyAsync(IServer server)
    {
        try
        {
            var values = await server.ConfigGetAsync("maxmemory-policy").ConfigureAwait(false);
            var policy = values.Length > 0 ? values[0].Value : null;
            return policy is null || string.Equals(policy, "noeviction", StringComparison.OrdinalIgnoreCase) ? null : policy;
        }
        catch (Exception ex) when (ex is RedisServerException or RedisCommandException)
        {
            // Managed Redis services often rename or forbid CONFIG; the operator's documentation then has to say it.
            if (!_configUnavailableLogged)
            {
                _configUnavailableLogged = true;
                LogConfigUnavailable(_logger, ex.Message);
            }

            return null;
        }
    }

    private static async Task<int> OnlineReplicasAsync(IServer server)
    {
        var sections = await server.InfoAsync("replication").ConfigureAwait(false);
        var online = 0;
        foreach (var section in sections)
        {
            foreach (var pair in section)
            {
                // slave0:ip=127.0.0.1,port=6380,state=online,offset=…,lag=0
                if (pair.Key.StartsWith("slave", StringComparison.Ordinal)
                    && int.TryParse(pair.Key.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out _)
                    && pair.Value.Contains("state=online", StringComparison.Ordinal))
                {
                    online++;
                }
            }
        }

        return online;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Redis primary {Primary}: {Acked} of {Required} replicas confirmed a write in time; it counts as failed")]
    private static partial void LogNotReplicated(ILogger logger, string primary, long acked, int required);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cannot read Redis' maxmemory-policy ({Reason}); make sure it is 'noeviction'")]
    private static partial void LogConfigUnavailable(ILogger logger, string reason);
}

/// <summary>A write that Redis did not confirm on enough replicas: it may be lost by a failover, so it counts as failed.</summary>
public sealed class RedisReplicationException(string message) : RedisException(message);
