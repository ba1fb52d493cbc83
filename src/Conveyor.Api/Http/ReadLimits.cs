using System.Collections.Concurrent;
using System.Globalization;
using Conveyor.Api.Security;
using Conveyor.Grains;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Conveyor.Api.Http;

/// <summary>
/// Caps the log streams (Server-Sent Events) a silo serves: <see cref="ConveyorLimitsOptions.MaxStreamsPerKey"/> per API
/// key and <see cref="ConveyorLimitsOptions.MaxStreamsPerSilo"/> in all. A stream holds its place until it ends; one
/// beyond a cap is answered 429 (<c>too-many-streams</c>, naming the setting) before anything is streamed.
/// </summary>
internal sealed class StreamLimitFilter(IOptions<ConveyorLimitsOptions> options)
{
    private readonly ConcurrentDictionary<string, int> _perKey = new(StringComparer.Ordinal);
    private int _total;

    /// <summary>Streams open now (all keys).</summary>
    public int Open => Volatile.Read(ref _total);

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var limits = options.Value;
        var key = context.HttpContext.CallerKey()?.Id;
        if (Interlocked.Increment(ref _total) > limits.MaxStreamsPerSilo)
        {
            Interlocked.Decrement(ref _total);
            return TooMany(context.HttpContext, nameof(limits.MaxStreamsPerSilo), limits.MaxStreamsPerSilo, "this silo serves");
        }

        if (key is not null && _perKey.AddOrUpdate(key, 1, static (_, n) => n + 1) > limits.MaxStreamsPerKey)
        {
            Leave(key);
            return TooMany(context.HttpContext, nameof(limits.MaxStreamsPerKey), limits.MaxStreamsPerKey, $"API key {key} may hold");
        }

        try
        {
            return await next(context).ConfigureAwait(false);
        }
        finally
        {
            Leave(key);
        }
    }

    private void Leave(string? key)
    {
        Interlocked.Decrement(ref _total);
        if (key is not null && _perKey.AddOrUpdate(key, 0, static (_, n) => n - 1) <= 0)
        {
            // Only a key with no stream open is dropped, so the map holds the keys streaming now, no more.
            _perKey.TryRemove(new KeyValuePair<string, int>(key, 0));
        }
    }

    private static ProblemHttpResult TooMany(HttpContext http, string setting, int limit, string who)
    {
        http.Response.Headers.RetryAfter = "5";
        var result = Problems.Create(StatusCodes.Status429TooManyRequests, "too-many-streams", "Too many log streams are open.",
            $"{who} at most {limit} log streams at once ({ConveyorLimitsOptions.Section}:{setting}); close one or retry later");
        result.ProblemDetails.Extensions["limit"] = $"{ConveyorLimitsOptions.Section}:{setting}";
        result.ProblemDetails.Extensions["limitValue"] = limit.ToString(CultureInfo.InvariantCulture);
        return result;
    }
}

/// <summary>
/// Limits read requests (GET, HEAD) per API key in each silo: a token bucket per key holding
/// <see cref="ConveyorLimitsOptions.ReadBurst"/> requests, refilled at <see cref="ConveyorLimitsOptions.ReadRequestsPerSecond"/>;
/// 429 with <c>Retry-After</c> beyond it. Requests without a key (anonymous routes, authentication off) are not limited.
/// The buckets follow the <see cref="TimeProvider"/>, so the limit does not depend on a timer firing.
/// </summary>
internal sealed class ReadRateLimitFilter(IOptions<ConveyorLimitsOptions> options, TimeProvider time)
{
    // One bucket per key that has read: bounded by the number of API keys, which an admin creates.
    private readonly ConcurrentDictionary<string, Bucket> _buckets = new(StringComparer.Ordinal);

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var limits = options.Value;
        if (limits.ReadRequestsPerSecond > 0 && (HttpMethods.IsGet(http.Request.Method) || HttpMethods.IsHead(http.Request.Method)) && http.CallerKey() is { } key)
        {
            var bucket = _buckets.GetOrAdd(key.Id, static (_, start) => new Bucket(start), time.GetTimestamp());
            if (bucket.TryTake(time, limits.ReadBurst, limits.ReadRequestsPerSecond) is { } wait)
            {
                var after = Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds));
                http.Response.Headers.RetryAfter = after.ToString(CultureInfo.InvariantCulture);
                var setting = $"{ConveyorLimitsOptions.Section}:{nameof(ConveyorLimitsOptions.ReadRequestsPerSecond)}";
                var result = Problems.Create(StatusCodes.Status429TooManyRequests, "too-many-requests", "Too many read requests.",
                    $"API key {key.Id} made more than {limits.ReadRequestsPerSecond} read requests per second ({setting}, bursts of {limits.ReadBurst}); retry after {after} s");
                result.ProblemDetails.Extensions["limit"] = setting;
                result.ProblemDetails.Extensions["limitValue"] = limits.ReadRequestsPerSecond.ToString(CultureInfo.InvariantCulture);
                return result;
            }
        }

        return await next(context).ConfigureAwait(false);
    }

    /// <summary>A key's tokens; full when first seen.</summary>
    private sealed class Bucket(long start)
    {
        private readonly Lock _lock = new();
        private long _refilledAt = start;
        private double _tokens = double.NaN;

        /// <summary>Takes a token; null when one was taken, otherwise how long until one is there.</summary>
        public TimeSpan? TryTake(TimeProvider time, int burst, int perSecond)
        {
            lock (_lock)
            {
                var now = time.GetTimestamp();
                _tokens = double.IsNaN(_tokens) ? burst : Math.Min(burst, _tokens + (time.GetElapsedTime(_refilledAt, now).TotalSeconds * perSecond));
                _refilledAt = now;
                if (_tokens >= 1)
                {
                    _tokens -= 1;
                    return null;
                }

                return TimeSpan.FromSeconds((1 - _tokens) / perSecond);
            }
        }
    }
}

/// <summary>Registers the read limits.</summary>
internal static class ReadLimitsServices
{
    public static IServiceCollection AddConveyorReadLimits(this IServiceCollection services)
    {
        services.AddSingleton<StreamLimitFilter>();
        services.AddSingleton<ReadRateLimitFilter>();
        return services;
    }
}
