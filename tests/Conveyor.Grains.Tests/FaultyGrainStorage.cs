using Orleans.Runtime;
using Orleans.Storage;

namespace Conveyor.Grains.Tests;

/// <summary>
/// Wraps the silo's real grain storage and, when armed, holds the next write of one grain until the test releases it,
/// then lets it through or fails it as a Redis outage does: the write lost, or stored with its reply lost.
/// </summary>
public sealed class FaultyGrainStorage(IGrainStorage inner) : IGrainStorage, ILifecycleParticipant<ISiloLifecycle>
{
    private readonly Lock _lock = new();
    private ArmedFault? _armed;

    /// <summary>Arms the next write of <paramref name="grain"/>; the returned fault says when it is held.</summary>
    public ArmedFault HoldNextWrite(GrainId grain, WriteFault mode)
    {
        var fault = new ArmedFault(grain, mode);
        lock (_lock)
        {
            _armed = fault;
        }

        return fault;
    }

    public Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) =>
        inner.ReadStateAsync(stateName, grainId, grainState);

    public async Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        ArmedFault? fault;
        lock (_lock)
        {
            fault = _armed?.Grain == grainId ? _armed : null;
            if (fault is not null)
            {
                _armed = null;
            }
        }

        if (fault is null)
        {
            await inner.WriteStateAsync(stateName, grainId, grainState);
            return;
        }

        fault.Held.TrySetResult();
        await fault.Release.Task;
        if (fault.Mode == WriteFault.None)
        {
            await inner.WriteStateAsync(stateName, grainId, grainState);
            return;
        }

        if (fault.Mode == WriteFault.StoredButFailed)
        {
            var etag = grainState.ETag;
            await inner.WriteStateAsync(stateName, grainId, grainState);
            // The caller never learns that the write landed, nor its new ETag.
            grainState.ETag = etag;
        }

        throw new InvalidOperationException($"injected storage fault writing {grainId}");
    }

    public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) =>
        inner.ClearStateAsync(stateName, grainId, grainState);

    public void Participate(ISiloLifecycle observer) => (inner as ILifecycleParticipant<ISiloLifecycle>)?.Participate(observer);

    /// <summary>One armed failure.</summary>
    public sealed class ArmedFault(GrainId grain, WriteFault mode)
    {
        public GrainId Grain { get; } = grain;

        public WriteFault Mode { get; } = mode;

        /// <summary>Completes when the write has arrived and is being held.</summary>
        public TaskCompletionSource Held { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Completed by the test to let the held write go on.</summary>
        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}

/// <summary>What a held write does when released.</summary>
public enum WriteFault
{
    /// <summary>Stored normally (the hold only orders events).</summary>
    None,

    /// <summary>Not stored; the caller sees an error.</summary>
    Lost,

    /// <summary>Stored, but the caller sees an error.</summary>
    StoredButFailed,
}
