using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Conveyor.Grains.Abstractions;
using Orleans.Runtime;

namespace Conveyor.Grains.Runs;

/// <summary>
/// References to run grains, for every caller. Orleans' <c>GetGrain&lt;T&gt;(Guid)</c> resolves the interface's
/// grain interface type on every call by reading its attributes through reflection (about 2 KB and a custom-attribute
/// scan per call, 3% of the silo's allocation per step); the grain type and interface type of runs never change, so
/// they are resolved once. Building the reference itself still constructs a generated proxy whose constructor resolves
/// its codecs through <c>ActivatorUtilities</c> (about 1.5 KB and a constructor lookup by reflection per reference, 2.5%
/// of the allocation per step under B3), so the references of recently used runs are kept: a run in flight is looked
/// up for every result, heartbeat and read.
/// </summary>
internal static class RunGrains
{
    private static (GrainType Grain, GrainInterfaceType Interface)? s_types;

    // Per grain factory: a reference belongs to the runtime that built it, and tests host several in one process.
    private static readonly ConditionalWeakTable<IGrainFactory, RecentReferences> s_recent = [];

    /// <summary>The run grain <paramref name="runId"/>: the same reference as <c>GetGrain&lt;IPipelineRunGrain&gt;(runId)</c>.</summary>
    public static IPipelineRunGrain GetRunGrain(this IGrainFactory grains, Guid runId)
    {
        ArgumentNullException.ThrowIfNull(grains);
        var recent = s_recent.GetValue(grains, static _ => new RecentReferences());
        if (recent.TryGet(runId) is { } known)
        {
            return known;
        }

        IPipelineRunGrain reference;
        if (s_types is not { } types)
        {
            reference = grains.GetGrain<IPipelineRunGrain>(runId);
            var grainReference = (GrainReference)reference;
            s_types = (grainReference.GrainId.Type, grainReference.InterfaceType);
        }
        else
        {
            var id = GrainId.Create(types.Grain, GrainIdKeyExtensions.CreateGuidKey(runId));
            reference = (IPipelineRunGrain)grains.GetGrain(id, types.Interface);
        }

        recent.Add(runId, reference);
        return reference;
    }

    /// <summary>
    /// The references of the last one to two thousand runs asked for, in two generations: when the current one is full it
    /// becomes the previous one and the one before is dropped, so the memory held is bounded without an eviction order
    /// to keep. Races only lose cache entries, never give a wrong one: a reference is immutable and fixed by its id.
    /// </summary>
    private sealed class RecentReferences
    {
        private const int GenerationSize = 1024;
        private ConcurrentDictionary<Guid, IPipelineRunGrain> _current = new();
        private ConcurrentDictionary<Guid, IPipelineRunGrain> _previous = new();
        private int _count;

        public IPipelineRunGrain? TryGet(Guid runId)
        {
            if (Volatile.Read(ref _current).TryGetValue(runId, out var reference))
            {
                return reference;
            }

            if (Volatile.Read(ref _previous).TryGetValue(runId, out reference))
            {
                Add(runId, reference);
                return reference;
            }

            return null;
        }

        public void Add(Guid runId, IPipelineRunGrain reference)
        {
            if (!Volatile.Read(ref _current).TryAdd(runId, reference))
            {
                return;
            }

            if (Interlocked.Increment(ref _count) == GenerationSize)
            {
                Volatile.Write(ref _previous, _current);
                Volatile.Write(ref _current, new ConcurrentDictionary<Guid, IPipelineRunGrain>());
                Volatile.Write(ref _count, 0);
            }
        }
    }
}
