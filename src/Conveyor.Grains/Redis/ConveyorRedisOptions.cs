using System.ComponentModel.DataAnnotations;

namespace Conveyor.Grains.Runs;

/// <summary>How Conveyor writes to Redis (configuration section <c>Conveyor:Redis</c>).</summary>
public sealed class ConveyorRedisOptions
{
    /// <summary>Configuration section.</summary>
    public const string Section = "Conveyor:Redis";

    /// <summary>
    /// How many replicas must hold a write (Redis <c>WAIT</c>) before the engine counts it as stored and acknowledges
    /// what caused it; a write that fewer replicas confirm within <see cref="ReplicaAckTimeout"/> fails and is retried
    /// or redelivered, so a failover can never lose something the engine acknowledged. Null (the default): 1 when the
    /// connection string names a Sentinel service (<c>serviceName=…</c>), else 0 (no waiting).
    /// </summary>
    [Range(0, 16)]
    public int? ReplicaAcks { get; set; }

    /// <summary>How long a write waits for its replicas before it counts as failed.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:01:00")]
    public TimeSpan ReplicaAckTimeout { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Refuse to start, and report not ready, when Redis' <c>maxmemory-policy</c> lets it evict keys (anything but
    /// <c>noeviction</c>): an evicted run, membership row or reminder is silently lost state.
    /// </summary>
    public bool RequireNoEviction { get; set; } = true;

    /// <summary>The number of replica acknowledgements in force for a connection string.</summary>
    public int EffectiveReplicaAcks(StackExchange.Redis.ConfigurationOptions connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        return ReplicaAcks ?? (string.IsNullOrEmpty(connection.ServiceName) ? 0 : 1);
    }
}
