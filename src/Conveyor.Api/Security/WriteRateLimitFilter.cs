using System.Globalization;
using System.Threading.RateLimiting;
using Conveyor.Api.Http;
using Conveyor.Grains.Runs;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using StackExchange.Redis;

namespace Conveyor.Api.Security;

/// <summary>
/// Limits write requests (POST, PUT, PATCH, DELETE) per API key: <see cref="ConveyorAuthOptions.WriteBurst"/> at once,
/// refilled at <see cref="ConveyorAuthOptions.WriteRequestsPerSecond"/>; 429 with <c>Retry-After</c> beyond it. Reads,
/// anonymous requests and hosts without authentication are not limited.
/// </summary>
/// <remarks>
/// With <see cref="WriteRateLimitScope.Cluster"/> (the default) and Conveyor's Redis, one bucket per key is shared by
/// every silo: a GCRA (generic cell rate algorithm, equivalent to a token bucket) in one Lua script, one round trip per
/// write, timed by the Redis server's clock so silos' clocks do not matter. When Redis does not answer, each silo falls
/// back to its own in-memory bucket: fail-open to the per-silo limit rather than refusing writes because the limiter is
/// down (the writes need Redis anyway). <see cref="WriteRateLimitScope.Silo"/>, or a host without Conveyor's Redis, uses
/// the in-memory bucket only: then N silos behind a load balancer allow up to N times the limit.
/// </remarks>
internal sealed partial class WriteRateLimitFilter : IEndpointFilter, IDisposable
{
    // TAT (theoretical arrival time, µs) per key. A request is allowed when, after adding one emission interval, the
    // TAT is at most burst × interval ahead of now; the key expires once the bucket would be full again.
    // ARGV[3], when given, is "now" in µs from a WriteRateLimitClock (tests); such a clock need not move with the Redis
    // server's, so its keys are kept without an expiry rather than expired by the server's time.
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

    private readonly PartitionedRateLimiter<string>? _local;
    private readonly ConveyorRedis? _redis;
    private readonly TimeProvider? _clock;
    private readonly string _prefix;
    private readonly ILogger<WriteRateLimitFilter> _logger;
    private readonly TimeProvider _time;
    private readonly int _burst;
    private readonly int _rate;
    private long _lastWarning = long.MinValue;

    public WriteRateLimitFilter(ConveyorAuthSettings settings, IServiceProvider services, ILogger<WriteRateLimitFilter> logger, TimeProvider time)
    {
        var options = settings.Options;
        _burst = options.WriteBurst;
        _rate = options.WriteRequestsPerSecond;
        _logger = logger;
        _time = time;
        _prefix = $"conveyor:{services.GetService<IOptions<ClusterOptions>>()?.Value.ServiceId ?? "conveyor"}:ratelimit:";
        if (settings.Enabled && options.WriteRequestsPerSecond > 0)
        {
            _redis = options.WriteRateLimitScope == WriteRateLimitScope.Cluster ? services.GetService<ConveyorRedis>() : null;
            _clock = services.GetService<WriteRateLimitClock>()?.Time;
            _local = PartitionedRateLimiter.Create<string, string>(key => RateLimitPartition.GetTokenBucketLimiter(key, _ => new TokenBucketRateLimiterOptions
            {
                TokenLimit = options.WriteBurst,
                TokensPerPeriod = options.WriteRequestsPerSecond,
                ReplenishmentPeriod = TimeSpan.FromSeconds(1),
                QueueLimit = 0,
                AutoReplenishment = true,
            }));
        }
    }

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        if (_local is not null && !HttpMethods.IsGet(http.Request.Method) && !HttpMethods.IsHead(http.Request.Method) && http.CallerKey() is { } key)
        {
            var (allowed, retryAfter) = await AcquireAsync(key.Id).ConfigureAwait(false);
            if (!allowed)
            {
                http.Response.Headers.RetryAfter = retryAfter.ToString(CultureInfo.InvariantCulture);
                return Problems.Create(StatusCodes.Status429TooManyRequests, "too-many-requests", "Too many write requests.",
                    $"API key {key.Id} made more than {_burst} write requests at once or more than {_rate} per second; retry after {retryAfter} s");
            }
        }

        return await next(context).ConfigureAwait(false);
    }

    /// <summary>Whether one more write of <paramref name="keyId"/> is allowed, and if not, after how many seconds to retry.</summary>
    private async Task<(bool Allowed, int RetryAfterSeconds)> AcquireAsync(string keyId)
    {
        if (_redis is not null)
        {
            try
            {
                var db = await _redis.GetDatabaseAsync().ConfigureAwait(false);
                RedisValue[] args = _clock is null
                    ? [1_000_000 / _rate, _burst]
                    : [1_000_000 / _rate, _burst, (_clock.GetUtcNow() - DateTimeOffset.UnixEpoch).Ticks / 10];
                var result = (RedisResult[])(await db.ScriptEvaluateAsync(Gcra, [(RedisKey)(_prefix + keyId)], args).ConfigureAwait(false))!;
                return ((int)result[0] == 1, Math.Max(1, (int)Math.Ceiling((long)result[1] / 1000.0)));
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
            {
                WarnFallback(ex);
            }
        }

        using var lease = _local!.AttemptAcquire(keyId);
        var after = lease.IsAcquired ? 0 : lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)) : 1;
        return (lease.IsAcquired, after);
    }

    private void WarnFallback(Exception ex)
    {
        var now = _time.GetTimestamp();
        var last = Interlocked.Read(ref _lastWarning);
        if ((last == long.MinValue || _time.GetElapsedTime(last, now) >= WarningEvery) && Interlocked.CompareExchange(ref _lastWarning, now, last) == last)
        {
            LogFallback(_logger, ex);
        }
    }

    public void Dispose() => _local?.Dispose();

    [LoggerMessage(Level = LogLevel.Warning, Message = "The cluster-wide write rate limit is unavailable (Redis did not answer); this silo limits writes on its own until it answers")]
    private static partial void LogFallback(ILogger logger, Exception exception);
}

/// <summary>
/// A clock for the cluster-wide write rate limit in place of the Redis server's, for tests that must decide exactly what
/// a bucket allows (a fake clock that only moves when the test moves it). Not registered in a real host: there the
/// Redis server's clock times every silo's requests alike.
/// </summary>
internal sealed class WriteRateLimitClock(TimeProvider time)
{
    /// <summary>The clock the buckets read.</summary>
    public TimeProvider Time { get; } = time;
}
