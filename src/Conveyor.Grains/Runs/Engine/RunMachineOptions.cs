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

    /// <summary>Uniform draws from [0, 1) for backoff jitter; a test fixes them.</summary>
    public Func<double> Jitter { get; init; } = Random.Shared.NextDouble;
}
