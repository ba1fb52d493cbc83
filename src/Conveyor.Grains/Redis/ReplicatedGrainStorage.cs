using Orleans.Storage;

namespace Conveyor.Grains.Runs;

/// <summary>
/// The Orleans grain storage of Conveyor's objects (resources, pipelines, definitions, keys, schedules…) with the run
/// store's write discipline: when <see cref="ConveyorRedis.ReplicaAcks"/> is above 0, a write counts only once that
/// many replicas hold it, so a Redis failover never loses an object whose creation was acknowledged. The inner storage
/// uses <see cref="ConveyorRedis"/>' shared connection, which is what makes the <c>WAIT</c> cover its writes.
/// </summary>
internal sealed class ReplicatedGrainStorage(IGrainStorage inner, ConveyorRedis redis) : IGrainStorage, ILifecycleParticipant<ISiloLifecycle>
{
    public Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) =>
        inner.ReadStateAsync(stateName, grainId, grainState);

    public async Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        var primary = Primary();
        await inner.WriteStateAsync(stateName, grainId, grainState).ConfigureAwait(false);
        await ConfirmAsync(primary).ConfigureAwait(false);
    }

    public async Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        var primary = Primary();
        await inner.ClearStateAsync(stateName, grainId, grainState).ConfigureAwait(false);
        await ConfirmAsync(primary).ConfigureAwait(false);
    }

    public void Participate(ISiloLifecycle lifecycle) => (inner as ILifecycleParticipant<ISiloLifecycle>)?.Participate(lifecycle);

    private System.Net.EndPoint? Primary() => redis.ReplicaAcks == 0 ? null : redis.CurrentPrimary()
        ?? throw new RedisReplicationException("no Redis primary is connected (a failover may be under way)");

    private Task ConfirmAsync(System.Net.EndPoint? primary) => primary is null ? Task.CompletedTask : redis.ConfirmReplicatedAsync(primary);
}
