using Conveyor.Grains.Abstractions;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Storage;

namespace Conveyor.Grains.Resources;

/// <summary>
/// One record per version of a resource, in the host's grain storage (with Redis: one key each), so an update writes
/// one version instead of rewriting every version ever stored, and the oldest can be deleted one by one.
/// </summary>
internal sealed class ResourceVersionStore([FromKeyedServices(ConveyorStorage.Name)] IGrainStorage storage)
{
    private const string StateName = "version";
    private static readonly GrainType Type = GrainType.Create("conveyor-resource-version");

    /// <summary>Stores <paramref name="data"/> as version <see cref="ResourceData.Version"/> of the resource (overwrites a copy a crash left).</summary>
    public async Task WriteAsync(string resourceKey, ResourceData data)
    {
        ArgumentNullException.ThrowIfNull(data);
        var id = Id(resourceKey, data.Version);
        var state = new GrainState<ResourceData>();
        await storage.ReadStateAsync(StateName, id, state).ConfigureAwait(false);
        state.State = data;
        await storage.WriteStateAsync(StateName, id, state).ConfigureAwait(false);
    }

    /// <summary>A stored version, or null.</summary>
    public async Task<ResourceData?> ReadAsync(string resourceKey, int version)
    {
        var state = new GrainState<ResourceData>();
        await storage.ReadStateAsync(StateName, Id(resourceKey, version), state).ConfigureAwait(false);
        return state.RecordExists ? state.State : null;
    }

    /// <summary>Deletes a version (nothing when it is not stored).</summary>
    public async Task DeleteAsync(string resourceKey, int version)
    {
        var id = Id(resourceKey, version);
        var state = new GrainState<ResourceData>();
        await storage.ReadStateAsync(StateName, id, state).ConfigureAwait(false);
        if (state.RecordExists)
        {
            await storage.ClearStateAsync(StateName, id, state).ConfigureAwait(false);
        }
    }

    private static GrainId Id(string resourceKey, int version) => GrainId.Create(Type, $"{resourceKey}/{version}");
}
