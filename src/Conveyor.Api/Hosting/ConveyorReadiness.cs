using Conveyor.Grains.Runs;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using NATS.Client.Core;
using Orleans.Runtime;

namespace Conveyor.Api.Hosting;

/// <summary>
/// What <c>/readyz</c> checks: the host is not shutting down, the engine's NATS connection is open, Redis answers a
/// PING within a short timeout, and this silo is an active cluster member. A load balancer that follows it sends no
/// new work to a silo that is draining or cut off from a dependency, and sends it again once the dependency is back.
/// </summary>
internal sealed class ConveyorReadiness(IServiceProvider services, IHostApplicationLifetime lifetime, INatsConnection nats, ISiloStatusOracle silo)
{
    /// <summary>How long a Redis PING may take before Redis counts as down.</summary>
    public static readonly TimeSpan RedisTimeout = TimeSpan.FromSeconds(1);

    private readonly ConveyorRedis? _redis = services.GetService<ConveyorRedis>();
    private readonly LocalServerSupervisor? _supervisor = services.GetService<LocalServerSupervisor>();
    private readonly Conveyor.Grains.Nats.JetStreamStatus? _streams = services.GetService<Conveyor.Grains.Nats.JetStreamStatus>();

    /// <summary>What is not ready, one entry per dependency; empty when ready.</summary>
    public async Task<IReadOnlyList<string>> CheckAsync(CancellationToken cancellationToken = default)
    {
        var problems = new List<string>();
        if (lifetime.ApplicationStopping.IsCancellationRequested)
        {
            problems.Add("the silo is shutting down");
        }

        if (nats.ConnectionState != NatsConnectionState.Open)
        {
            problems.Add($"NATS connection is {nats.ConnectionState}");
        }

        if (silo.CurrentStatus != SiloStatus.Active)
        {
            problems.Add($"this silo is {silo.CurrentStatus}, not an active cluster member");
        }

        if (_redis is not null)
        {
            try
            {
                var db = await _redis.GetDatabaseAsync().WaitAsync(RedisTimeout, cancellationToken).ConfigureAwait(false);
                await db.PingAsync().WaitAsync(RedisTimeout, cancellationToken).ConfigureAwait(false);
                // An evicting maxmemory-policy, or fewer replicas than writes wait for (e.g. after a failover).
                problems.AddRange(await _redis.CheckAsync(cancellationToken).WaitAsync(RedisTimeout, cancellationToken).ConfigureAwait(false));
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                problems.Add($"Redis does not answer ({ex.GetType().Name})");
            }
        }

        // A supervised server that died and is being restarted (single node).
        problems.AddRange(_supervisor?.Problems ?? []);

        // Streams the NATS cluster cannot place with the configured replicas.
        problems.AddRange(_streams?.Problems ?? []);
        return problems;
    }
}
