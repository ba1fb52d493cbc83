using System.Threading.RateLimiting;
using Conveyor.Grains.Runs;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Conveyor.Api.Security;

/// <summary>
/// A token bucket per key (a burst at once, refilled at a rate per second), shared by every
/// silo through Conveyor's Redis when one is given, else (or while Redis does not answer) kept in this silo's memory.
/// </summary>
/// <remarks>
/// The shared form is a GCRA (generic cell rate algorithm, equivalent to a token bucket) in one Lua script, one round
/// trip per request, timed by the Redis server's clock so silos' clocks do not matter. When Redis does not answer, each
/// silo falls back to its own bucket: fail-open to the per-silo limit rather than refusing requests because the
/// limiter is down, with a warning at most every 30 s.
/// </remarks>
internal sealed partial class ClusterRateLimiter : IDisposable
{
    // TAT (theoretical arrival time, µs) per key. A request is allowed when, after adding one emission interval, the
    // TAT is at most burst × interval ahead of now; the key expires once the bucket would be full again.
    // ARGV[3], when given, is "now" in µs from a test's clock; such a clock need not move with the Redis server's, so
    // its keys are kept without an expiry rather than expired by the server's time.
    private const string Gcra = """
        local now
        if ARGV[3] then
          now = tonumber(ARGV[3])
        else
          local t = redis.call('TIME')
          now = tonumber(t[1]) * 1000000 + tonumber(t[2])
        end
        local interval = tonumber(ARGV[1])
        local capacity = tonumber(ARGV[2]) * interval
        local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
        if tat < now then tat = now end
        local nxt = tat + interval
        if nxt - now > capacity then
          return {0, math.ceil((nxt - now - capacity) / 1000)}
        end
        if ARGV[3] then
          redis.call('SET', KEYS[1], string.format('%.0f', nxt))
        else
          redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX', math.ceil((nxt - now) / 1000) + 1)
        end
        return {1, 0}
        """;

    private static readonly TimeSpan WarningEvery = TimeSpan.FromSeconds(30);

    private readonly PartitionedRateLimiter<string> _local;
    private readonly ConveyorRedis? _redis;
    private readonly string _prefix;
    private readonly int _perSecond;
    private readonly int _burst;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly TimeProvider? _clock;
    private long _lastWarning = long.MinValue;

    // clock: null, the Redis server's clock times the shared buckets (a real host); a test's clock otherwise.
    public ClusterRateLimiter(int perSecond, int burst, ConveyorRedis? redis, string prefix, ILogger logger, TimeProvider time, TimeProvider? clock = null)
    {
        _clock = clock;
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(perSecond);
        _perSecond = perSecond;
        _burst = burst;
        _redis = redis;
        _prefix = prefix;
        _logger = logger;
        _time = time;
        _local = PartitionedRateLimiter.Create<string, string>(key => RateLimitPartition.GetTokenBucketLimiter(key, _ => new TokenBucketRateLimiterOptions
        {
            TokenLimit = burst,
            TokensPerPeriod = perSecond,
            ReplenishmentPeriod = TimeSpan.FromSeconds(1),
            QueueLimit = 0,
            AutoReplenishment = true,
        }));
    }

    /// <summary>Whether one more request of <paramref name="key"/> is allowed, and if not, after how many seconds to retry.</summary>
    public async Task<(bool Allowed, int RetryAfterSeconds)> AcquireAsync(string key)
    {
        if (_redis is not null)
        {
            try
            {
                var db = await _redis.GetDatabaseAsync().ConfigureAwait(false);
                RedisValue[] args = _clock is null
                    ? [1_000_000 / _perSecond, _burst]
                    : [1_000_000 / _perSecond, _burst, (_clock.GetUtcNow() - DateTimeOffset.UnixEpoch).Ticks / 10];
                var result = (RedisResult[])(await db.ScriptEvaluateAsync(Gcra, [(RedisKey)(_prefix + key)], args).ConfigureAwait(false))!;
                return ((int)result[0] == 1, Math.Max(1, (int)Math.Ceiling((long)result[1] / 1000.0)));
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
            {
                WarnFallback(ex);
            }
        }

        using var lease = _local.AttemptAcquire(key);
        var after = lease.IsAcquired ? 0 : lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)) : 1;
        return (lease.IsAcquired, after);
    }

    private void WarnFallback(Exception ex)
    {
        var now = _time.GetTimestamp();
        var last = Interlocked.Read(ref _lastWarning);
        if ((last == long.MinValue || _time.GetElapsedTime(last, now) >= WarningEvery) && Interlocked.CompareExchange(ref _lastWarning, now, last) == last)
        {
            LogFallback(_logger, ex, _prefix);
        }
    }

    public void Dispose() => _local.Dispose();

    [LoggerMessage(Level = LogLevel.Warning, Message = "The cluster-wide rate limit {Limit} is unavailable (Redis did not answer); this silo limits on its own until it answers")]
    private static partial void LogFallback(ILogger logger, Exception exception, string limit);
}
