using System.Globalization;
using System.Threading.RateLimiting;
using Conveyor.Api.Http;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Conveyor.Api.Security;

/// <summary>
/// Bounds what callers without a valid credential can make a silo do, per client address: each failed
/// authentication (missing, malformed, unknown or revoked API key, wrong webhook signature, bad step token) and each
/// webhook delivery to an unknown hook takes a token from the address's bucket
/// (<see cref="ConveyorAuthOptions.FailedRequestBurst"/>, refilled at <see cref="ConveyorAuthOptions.FailedRequestsPerSecond"/>).
/// An address whose bucket is empty gets 429 before anything is read from storage or any grain is activated.
/// </summary>
/// <remarks>
/// Per silo, in memory: the point is that a flood of junk costs a silo nothing but the refusal. The address is the
/// connection's; behind a reverse proxy, put ASP.NET Core's forwarded-headers middleware in front so it is the client's.
/// </remarks>
internal sealed class ClientAddressLimiter : IDisposable
{
    private readonly PartitionedRateLimiter<string>? _buckets;

    public ClientAddressLimiter(ConveyorAuthSettings settings)
    {
        var options = settings.Options;
        if (options.FailedRequestsPerSecond > 0)
        {
            _buckets = PartitionedRateLimiter.Create<string, string>(address => RateLimitPartition.GetTokenBucketLimiter(address, _ => new TokenBucketRateLimiterOptions
            {
                TokenLimit = options.FailedRequestBurst,
                TokensPerPeriod = options.FailedRequestsPerSecond,
                ReplenishmentPeriod = TimeSpan.FromSeconds(1),
                QueueLimit = 0,
                AutoReplenishment = true,
            }));
        }
    }

    /// <summary>Whether the request's address has used up its failures: it is then refused before any work.</summary>
    public bool IsBlocked(HttpContext http)
    {
        if (_buckets is null)
        {
            return false;
        }

        // Not AttemptAcquire(0): the bucket refills in fractions, and a fraction of a token passes that check while no
        // whole failure is left.
        return _buckets.GetStatistics(AddressOf(http)) is { CurrentAvailablePermits: < 1 };
    }

    /// <summary>Counts a failure of the request's address.</summary>
    public void RecordFailure(HttpContext http)
    {
        if (_buckets is not null)
        {
            using var lease = _buckets.AttemptAcquire(AddressOf(http));
        }
    }

    /// <summary>The 429 a blocked address gets.</summary>
    public static ProblemHttpResult TooMany(HttpContext http)
    {
        http.Response.Headers.RetryAfter = "1";
        return Problems.Create(StatusCodes.Status429TooManyRequests, "too-many-requests", "Too many failed requests.",
            $"too many requests without valid credentials came from {AddressOf(http)}; retry after 1 s");
    }

    private static string AddressOf(HttpContext http) =>
        http.Connection.RemoteIpAddress?.ToString() ?? "unknown";

    public void Dispose() => _buckets?.Dispose();
}
