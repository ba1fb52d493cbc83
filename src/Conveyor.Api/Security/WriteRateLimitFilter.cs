using System.Globalization;
using Conveyor.Api.Http;
using Conveyor.Grains.Runs;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Configuration;

namespace Conveyor.Api.Security;

/// <summary>
/// Limits write requests (POST, PUT, PATCH, DELETE) per API key: <see cref="ConveyorAuthOptions.WriteBurst"/> at once,
/// refilled at <see cref="ConveyorAuthOptions.WriteRequestsPerSecond"/>; 429 with <c>Retry-After</c> beyond it. Reads,
/// anonymous requests and hosts without authentication are not limited.
/// </summary>
/// <remarks>
/// With <see cref="WriteRateLimitScope.Cluster"/> (the default) and Conveyor's Redis, one bucket per key is shared by
/// every silo (<see cref="ClusterRateLimiter"/>). <see cref="WriteRateLimitScope.Silo"/>, or a host without Conveyor's
/// Redis, uses the in-memory bucket only: then N silos behind a load balancer allow up to N times the limit.
/// </remarks>
internal sealed class WriteRateLimitFilter : IEndpointFilter, IDisposable
{
    private readonly ClusterRateLimiter? _limiter;
    private readonly int _burst;
    private readonly int _rate;

    public WriteRateLimitFilter(ConveyorAuthSettings settings, IServiceProvider services, ILogger<WriteRateLimitFilter> logger, TimeProvider time)
    {
        var options = settings.Options;
        _burst = options.WriteBurst;
        _rate = options.WriteRequestsPerSecond;
        if (settings.Enabled && options.WriteRequestsPerSecond > 0)
        {
            var redis = options.WriteRateLimitScope == WriteRateLimitScope.Cluster ? services.GetService<ConveyorRedis>() : null;
            _limiter = new ClusterRateLimiter(_rate, _burst, redis, RedisPrefix(services) + "ratelimit:", logger, time, services.GetService<WriteRateLimitClock>()?.Time);
        }
    }

    /// <summary>The prefix of Conveyor's keys in Redis: per service id, so services sharing a Redis never share a bucket.</summary>
    internal static string RedisPrefix(IServiceProvider services) =>
        $"conveyor:{services.GetService<IOptions<ClusterOptions>>()?.Value.ServiceId ?? "conveyor"}:";

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        if (_limiter is not null && !HttpMethods.IsGet(http.Request.Method) && !HttpMethods.IsHead(http.Request.Method) && http.CallerKey() is { } key)
        {
            var (allowed, retryAfter) = await _limiter.AcquireAsync(key.Id).ConfigureAwait(false);
            if (!allowed)
            {
                http.Response.Headers.RetryAfter = retryAfter.ToString(CultureInfo.InvariantCulture);
                return Problems.Create(StatusCodes.Status429TooManyRequests, "too-many-requests", "Too many write requests.",
                    $"API key {key.Id} made more than {_burst} write requests at once or more than {_rate} per second; retry after {retryAfter} s");
            }
        }

        return await next(context).ConfigureAwait(false);
    }

    public void Dispose() => _limiter?.Dispose();
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
