using Conveyor.Grains.Abstractions;

namespace Conveyor.Grains.Flow;

/// <summary>Queueing settings (configuration section <c>Conveyor:FlowControl</c>). Every silo must use the same values.</summary>
public sealed class FlowControlOptions
{
    /// <summary>Configuration section.</summary>
    public const string Section = "Conveyor:FlowControl";

    /// <summary>
    /// Most active runs per namespace, by namespace name (<c>Conveyor:FlowControl:NamespaceLimits:team-a=10</c>).
    /// A namespace that is not listed uses <see cref="DefaultNamespaceLimit"/>.
    /// </summary>
    public Dictionary<string, int> NamespaceLimits { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Most active runs of a namespace that <see cref="NamespaceLimits"/> does not list; null: unlimited.</summary>
    public int? DefaultNamespaceLimit { get; set; }

    /// <summary>
    /// How often a queue with work checks that its active runs still exist and are unfinished, so that a run that
    /// ended without releasing its slot (lost message, deleted state) frees it within this period.
    /// </summary>
    public TimeSpan VerifyPeriod { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>The namespace's limit, or null when it has none.</summary>
    public int? LimitFor(string ns) => NamespaceLimits.TryGetValue(ns, out var limit) ? limit : DefaultNamespaceLimit;

    /// <summary>
    /// The admission queue a new run of <paramref name="pipeline"/> joins: the namespace's own queue when the namespace
    /// has a limit (one queue then orders all its runs), else the pipeline's. The one definition, for the runs and for
    /// what reads their queues.
    /// </summary>
    public string QueueKeyFor(string ns, string pipeline) => LimitFor(ns) is not null ? ns : Names.PipelineKey(ns, pipeline);
}
