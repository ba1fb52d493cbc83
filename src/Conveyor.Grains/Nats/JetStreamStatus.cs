namespace Conveyor.Grains.Nats;

/// <summary>
/// What is wrong with the engine's JetStream streams as the silo last found them (e.g. a cluster that cannot place
/// the configured replicas); empty when they are as configured. Readiness reports it.
/// </summary>
public sealed class JetStreamStatus
{
    private volatile IReadOnlyList<string> _problems = [];

    /// <summary>One entry per stream that could not be created or updated as configured.</summary>
    public IReadOnlyList<string> Problems => _problems;

    /// <summary>Replaces what is wrong (empty: nothing).</summary>
    public void Set(IReadOnlyList<string> problems) => _problems = problems ?? [];
}
