using System.Collections.Concurrent;
using Conveyor.Api.Hosting;
using Conveyor.Grains.Runs;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Conveyor.Api.Security;

/// <summary>
/// What stands between a correctly signed delivery and a run: a rate limit per webhook, and a memory of signed bodies
/// so that a replay within <see cref="ConveyorWebhookOptions.SignatureTolerance"/> — whatever delivery id it carries,
/// since that header is not signed — answers with the run the first one started.
/// </summary>
/// <remarks>
/// Both live in Conveyor's Redis when there is one (shared by every silo; a claim is one <c>SET NX PX</c>), else in this
/// silo's memory.
/// </remarks>
internal sealed class WebhookGuard : IDisposable
{
    private const int LocalCapacity = 100_000;
    private readonly ClusterRateLimiter? _limiter;
    private readonly ConveyorRedis? _redis;
    private readonly string _prefix;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<string, (Guid RunId, DateTimeOffset Until)> _local = new(StringComparer.Ordinal);

    public WebhookGuard(ConveyorOptions options, IServiceProvider services, ILogger<WebhookGuard> logger, TimeProvider time)
    {
        Options = options.Webhooks;
        _time = time;
        _redis = services.GetService<ConveyorRedis>();
        _prefix = WriteRateLimitFilter.RedisPrefix(services);
        if (Options.DeliveriesPerSecond > 0)
        {
            _limiter = new ClusterRateLimiter(Options.DeliveriesPerSecond, Options.DeliveryBurst, _redis, _prefix + "hooklimit:", logger, time);
        }
    }

    public ConveyorWebhookOptions Options { get; }

    /// <summary>Whether one more delivery to <paramref name="hook"/> is allowed now.</summary>
    public Task<(bool Allowed, int RetryAfterSeconds)> AcquireAsync(string hook) =>
        _limiter?.AcquireAsync(hook) ?? Task.FromResult((true, 0));

    /// <summary>
    /// Claims the signed body <paramref name="digest"/> of <paramref name="hook"/> for <paramref name="runId"/>; when
    /// it was claimed within the window, returns the run that claimed it instead (and claims nothing).
    /// </summary>
    public async Task<Guid?> ClaimAsync(string hook, string digest, Guid runId)
    {
        var key = $"{_prefix}hookseen:{hook}:{digest}";
        if (_redis is not null)
        {
            var db = await _redis.GetDatabaseAsync().ConfigureAwait(false);
            if (await db.StringSetAsync(key, runId.ToString("D"), Options.SignatureTolerance, When.NotExists).ConfigureAwait(false))
            {
                return null;
            }

            var seen = await db.StringGetAsync(key).ConfigureAwait(false);
            return Guid.TryParse(seen.ToString(), out var earlier) ? earlier : runId;
        }

        var now = _time.GetUtcNow();
        if (_local.Count >= LocalCapacity)
        {
            foreach (var stale in _local.Where(e => e.Value.Until <= now).Select(e => e.Key).ToList())
            {
                _local.TryRemove(stale, out _);
            }
        }

        var claim = _local.AddOrUpdate(key, (runId, now + Options.SignatureTolerance), (_, old) => old.Until > now ? old : (runId, now + Options.SignatureTolerance));
        return claim.RunId == runId ? null : claim.RunId;
    }

    /// <summary>Gives a claim back: the run it was for could not be started, so a retry of the delivery must be able to.</summary>
    public async Task ReleaseAsync(string hook, string digest)
    {
        var key = $"{_prefix}hookseen:{hook}:{digest}";
        if (_redis is not null)
        {
            var db = await _redis.GetDatabaseAsync().ConfigureAwait(false);
            await db.KeyDeleteAsync(key).ConfigureAwait(false);
        }
        else
        {
            _local.TryRemove(key, out _);
        }
    }

    public void Dispose() => _limiter?.Dispose();
}
