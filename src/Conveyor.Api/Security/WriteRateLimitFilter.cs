using System.Globalization;
using System.Threading.RateLimiting;
using Conveyor.Api.Http;
using Microsoft.AspNetCore.Http;

namespace Conveyor.Api.Security;

/// <summary>
/// Limits write requests per API key (token bucket: <see cref="ConveyorAuthOptions.WriteBurst"/> at once, refilled at
/// <see cref="ConveyorAuthOptions.WriteRequestsPerSecond"/>); 429 with <c>Retry-After</c> beyond it. Reads, anonymous
/// requests and hosts without authentication are not limited.
/// </summary>
internal sealed class WriteRateLimitFilter : IEndpointFilter, IDisposable
{
    private readonly PartitionedRateLimiter<string>? _limiter;
    private readonly int _burst;
    private readonly int _rate;

    public WriteRateLimitFilter(ConveyorAuthSettings settings)
    {
        var options = settings.Options;
        _burst = options.WriteBurst;
        _rate = options.WriteRequestsPerSecond;
        if (settings.Enabled && options.WriteRequestsPerSecond > 0)
        {
            _limiter = PartitionedRateLimiter.Create<string, string>(key => RateLimitPartition.GetTokenBucketLimiter(key, _ => new TokenBucketRateLimiterOptions
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
        if (_limiter is not null && !HttpMethods.IsGet(http.Request.Method) && !HttpMethods.IsHead(http.Request.Method) && http.CallerKey() is { } key)
        {
            using var lease = _limiter.AttemptAcquire(key.Id);
            if (!lease.IsAcquired)
            {
                var retryAfter = lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? Math.Max(1, (int)Math.Ceiling(after.TotalSeconds)) : 1;
                http.Response.Headers.RetryAfter = retryAfter.ToString(CultureInfo.InvariantCulture);
                return Problems.Create(StatusCodes.Status429TooManyRequests, "too-many-requests", "Too many write requests.",
                    $"API key {key.Id} made more than {_burst} write requests at once or more than {_rate} per second; retry after {retryAfter} s");
            }
        }

        return await next(context).ConfigureAwait(false);
    }

    public void Dispose() => _limiter?.Dispose();
}
