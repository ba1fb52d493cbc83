using Conveyor.Grains.Abstractions;

namespace Conveyor.Grains.Runs.Engine;

/// <summary>How long finished runs are kept when their pipeline does not say: per namespace, else for every run.</summary>
/// <param name="Period">The default; null or <see cref="TimeSpan.Zero"/> keeps runs forever.</param>
/// <param name="NamespacePeriods">Overrides by namespace name (zero: forever).</param>
internal sealed record RetentionDefaults(TimeSpan? Period, IReadOnlyDictionary<string, TimeSpan> NamespacePeriods)
{
    /// <summary>No run is ever deleted by retention.</summary>
    public static RetentionDefaults KeepForever { get; } = new(null, new Dictionary<string, TimeSpan>(StringComparer.Ordinal));
}

/// <summary>When a finished run expires: the pipeline's period, else its namespace's, else the engine's.</summary>
internal static class RetentionRule
{
    /// <summary>The expiry of a run of <paramref name="plan"/> that ended at <paramref name="finishedAt"/>; null: kept forever.</summary>
    public static DateTimeOffset? ExpiresAt(RunPlan plan, DateTimeOffset finishedAt, RetentionDefaults defaults)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(defaults);
        var period = plan.Pipeline.Retention?.Period
            ?? (defaults.NamespacePeriods.TryGetValue(plan.Namespace, out var byNamespace) ? byNamespace : defaults.Period);
        return period is { } p && p > TimeSpan.Zero ? finishedAt + p : null;
    }

    /// <summary>The cap on finished runs of the plan's pipeline, or null.</summary>
    public static int? KeepLast(RunPlan plan) => plan?.Pipeline.Retention?.KeepLast is > 0 and var keep ? keep : null;
}
