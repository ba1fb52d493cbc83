using Conveyor.Grains.Flow;

namespace Conveyor.Grains.Runs.Engine;

/// <summary>The settings a run's state machine decides with; plain data, the same for every run of a silo.</summary>
internal sealed record RunMachineOptions
{
    /// <summary>Queueing settings: namespace limits and the queue a run joins.</summary>
    public FlowControlOptions Flow { get; init; } = new();

    /// <summary>How soon a step waiting for its driver's consumer is dispatched again.</summary>
    public TimeSpan DriverWaitInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// After NATS reconnects, dispatches confirmed less than this long ago go out again: JetStream drops the copies it
    /// still has within its de-duplication window, which this stays safely inside.
    /// </summary>
    public TimeSpan RepublishWindow { get; init; } = TimeSpan.FromMinutes(2) - TimeSpan.FromSeconds(15);

    /// <summary>How long a prepared run waits for its resource to commit before it asks on its own.</summary>
    public TimeSpan CommitGrace { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Whether transitions put CDEvents in the run's outbox.</summary>
    public bool EmitEvents { get; init; } = true;

    /// <summary>Base URL of the API for the events' links to a run; null gives the run's API path.</summary>
    public string? EventsBaseUrl { get; init; }

    /// <summary>Whether transitions go to the run events feed (the run's event outbox).</summary>
    public bool EmitRunEvents { get; init; } = true;

    /// <summary>How steps' <c>when</c> conditions are evaluated.</summary>
    public IConditionEvaluator Conditions { get; init; } = global::Conveyor.Grains.Runs.Conditions.CelConditions.Shared;

    /// <summary>How deep sub-pipelines may nest: a step of a run this deep that would start a child fails instead.</summary>
    public int MaxDepth { get; init; } = 5;
    /// <summary>
    /// Timeout of one attempt of a step that sets none; null: such an attempt waits for its result for ever. A driver's
    /// heartbeat (<see cref="Heartbeat"/>) replaces it with a lease of <see cref="HeartbeatLease"/>.
    /// </summary>
    public TimeSpan? DefaultAttemptTimeout { get; init; }

    /// <summary>
    /// How long one heartbeat keeps an attempt of a step without a <c>timeout</c> alive (at least three of the driver's
    /// heartbeat intervals): a driver that stops heart-beating loses the attempt this long after its last heartbeat.
    /// </summary>
    public TimeSpan HeartbeatLease { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// The longest an attempt of a step without a <c>timeout</c> may run however its driver heart-beats (a reconcile
    /// that hangs in a live driver process heart-beats for ever); null: no cap.
    /// </summary>
    public TimeSpan? MaxAttemptDuration { get; init; }

    /// <summary>Most UTF-8 bytes of a driver result's <c>data</c>; a larger result fails its attempt. Null: no limit.</summary>
    public int? MaxResultDataBytes { get; init; }

    /// <summary>How long finished runs are kept when their pipeline does not say.</summary>
    public RetentionDefaults Retention { get; init; } = RetentionDefaults.KeepForever;

    /// <summary>Uniform draws from [0, 1) for backoff jitter; a test fixes them.</summary>
    public Func<double> Jitter { get; init; } = Random.Shared.NextDouble;
}
