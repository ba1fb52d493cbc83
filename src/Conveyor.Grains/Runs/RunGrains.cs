using Conveyor.Grains.Abstractions;
using Orleans.Runtime;

namespace Conveyor.Grains.Runs;

/// <summary>
/// References to run grains, for every caller. Orleans' <c>GetGrain&lt;T&gt;(Guid)</c> resolves the interface's
/// grain interface type on every call by reading its attributes through reflection (about 2 KB and a custom-attribute
/// scan per call, 3% of the silo's allocation per step); the grain type and interface type of runs never change, so
/// they are resolved once and each reference is then built from its id alone.
/// </summary>
internal static class RunGrains
{
    private static (GrainType Grain, GrainInterfaceType Interface)? s_types;

    /// <summary>The run grain <paramref name="runId"/>: the same reference as <c>GetGrain&lt;IPipelineRunGrain&gt;(runId)</c>.</summary>
    public static IPipelineRunGrain GetRunGrain(this IGrainFactory grains, Guid runId)
    {
        ArgumentNullException.ThrowIfNull(grains);
        if (s_types is not { } types)
        {
            var first = grains.GetGrain<IPipelineRunGrain>(runId);
            var reference = (GrainReference)first;
            s_types = (reference.GrainId.Type, reference.InterfaceType);
            return first;
        }

        var id = GrainId.Create(types.Grain, GrainIdKeyExtensions.CreateGuidKey(runId));
        return (IPipelineRunGrain)grains.GetGrain(id, types.Interface);
    }
}
