using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Flow;

namespace Conveyor.Grains.Runs.Engine;

/// <summary>Whether a run waits for a slot, in which queue, and what it asks that queue for.</summary>
internal static class AdmissionRule
{
    /// <summary>
    /// What the run asks its queue for, or null when neither its pipeline nor its namespace limits runs. A run that
    /// was queued stays with its queue (a configuration change applies to later runs).
    /// </summary>
    /// <param name="run">The run.</param>
    /// <param name="flow">Flow-control settings (namespace limits).</param>
    /// <param name="queue">The queue's key (<see cref="FlowControlOptions.QueueKeyFor"/>, or the one the run already has).</param>
    public static AdmissionRequest? For(RunState run, FlowControlOptions flow, out string queue)
    {
        var pipeline = run.Plan.Pipeline;
        var ns = run.Plan.Namespace;
        var nsLimit = flow.LimitFor(ns);
        queue = run.AdmissionKey ?? flow.QueueKeyFor(ns, pipeline.Name);
        if (run.AdmissionKey is null && nsLimit is null && pipeline.Concurrency is null && pipeline.ConcurrencyGroup is null)
        {
            return null;
        }

        return new AdmissionRequest
        {
            RunId = run.RunId,
            Pipeline = pipeline.Name,
            Priority = run.Plan.Priority,
            Group = pipeline.ConcurrencyGroup is { } g ? ConcurrencyKeys.Evaluate(g.Key, run.Plan.Resource) : null,
            CancelInProgress = pipeline.ConcurrencyGroup?.OnConflict == GroupConflictPolicy.CancelInProgress,
            PipelineLimit = pipeline.Concurrency,
            NamespaceLimit = nsLimit,
        };
    }

    /// <summary>Why a run ends when a newer run of its concurrency group replaces it.</summary>
    public static string SupersededReason(RunPlan plan, Guid by)
    {
        var g = plan.Pipeline.ConcurrencyGroup;
        var group = g is null ? "" : $" in concurrency group {g.Key}={ConcurrencyKeys.Evaluate(g.Key, plan.Resource)}";
        return $"superseded by run {by}{group}";
    }
}
