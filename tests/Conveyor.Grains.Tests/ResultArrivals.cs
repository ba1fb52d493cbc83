using System.Collections.Concurrent;
using Conveyor.Grains.Abstractions;

namespace Conveyor.Grains.Tests;

/// <summary>
/// Tells a test when a driver result for a given step has been handed to its run grain: the grain queues a result in
/// the synchronous part of <see cref="IPipelineRunGrain.ApplyResultAsync"/>, so once that part has returned the
/// result is queued for the next group commit.
/// </summary>
public sealed class ResultArrivals : IIncomingGrainCallFilter
{
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _waiting = new(StringComparer.Ordinal);

    /// <summary>Completes when a result for <paramref name="step"/> of <paramref name="runId"/> has been queued.</summary>
    public Task Queued(Guid runId, string step) => Slot(runId, step).Task;

    public async Task Invoke(IIncomingGrainCallContext context)
    {
        var call = context.Invoke();
        if (context.InterfaceMethod.Name == nameof(IPipelineRunGrain.ApplyResultAsync)
            && context.Request.GetArgument(0) is DriverResultInput { StepId: { } step })
        {
            Slot(context.TargetId.GetGuidKey(), step).TrySetResult();
        }

        await call;
    }

    private TaskCompletionSource Slot(Guid runId, string step) =>
        _waiting.GetOrAdd($"{runId}/{step}", _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
}
