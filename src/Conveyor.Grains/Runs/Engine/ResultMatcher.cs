using Conveyor.Grains.Abstractions;

namespace Conveyor.Grains.Runs.Engine;

/// <summary>Which step attempt a driver result answers, or why it answers none.</summary>
internal static class ResultMatcher
{
    /// <summary>
    /// A result naming its step (the SDK's) must name the step's driver and its current attempt, which must still be
    /// in flight. A result naming no step (an original driver's, which says only who it is) answers the driver's
    /// oldest unanswered delivery: such a driver takes its messages in stream order, one at a time, so that is the in-flight
    /// attempt of that driver with the lowest stream sequence.
    /// </summary>
    /// <param name="result">The result.</param>
    /// <param name="graph">The run's DAG.</param>
    /// <param name="inFlight">The run's steps that wait for a result.</param>
    public static (StepState? Step, ApplyOutcome Outcome) Match(DriverResultInput result, RunGraph graph, IEnumerable<StepState> inFlight)
    {
        var ended = graph.Run.Status.IsTerminal();
        StepState? step;
        if (result.StepId is not null)
        {
            step = graph.FindStep(result.StepId);
            // Only driver work takes results: not a matrix step (its instances do), an approval gate or a sub-pipeline step.
            if (step is null || step.Instances is not null || graph.Spec(step).Kind != StepKind.Driver
                || !string.Equals(graph.Spec(step).Driver, result.Driver, StringComparison.Ordinal))
            {
                return (null, ApplyOutcome.UnknownStep);
            }

            var current = step.Current;
            if (current is null || (result.Attempt is { } a && a != current.Number))
            {
                return (null, ApplyOutcome.Stale);
            }

            if (current.Success is not null)
            {
                return (null, ApplyOutcome.Duplicate);
            }

            return step.Status.IsInFlight() && !ended ? (step, ApplyOutcome.Applied) : (null, ApplyOutcome.Stale);
        }

        step = null;
        foreach (var candidate in inFlight)
        {
            if (string.Equals(graph.Spec(candidate).Driver, result.Driver, StringComparison.Ordinal)
                && (step is null || DeliveredEarlier(candidate, step, graph)))
            {
                step = candidate;
            }
        }

        if (step is not null && !ended)
        {
            return (step, ApplyOutcome.Applied);
        }

        return (null, graph.HasDriver(result.Driver) ? ApplyOutcome.Duplicate : ApplyOutcome.UnknownStep);
    }

    /// <summary>
    /// Whether <paramref name="x"/>'s attempt reached its driver before <paramref name="y"/>'s: by stream sequence (an
    /// unconfirmed dispatch counts as last), then by decision time, then by declaration order.
    /// </summary>
    private static bool DeliveredEarlier(StepState x, StepState y, RunGraph graph)
    {
        var (a, b) = (x.Current!, y.Current!);
        var sa = a.Published && a.Sequence > 0 ? a.Sequence : ulong.MaxValue;
        var sb = b.Published && b.Sequence > 0 ? b.Sequence : ulong.MaxValue;
        return sa != sb ? sa < sb : a.DispatchedAt != b.DispatchedAt ? a.DispatchedAt < b.DispatchedAt : graph.OrderOf(x) < graph.OrderOf(y);
    }
}
