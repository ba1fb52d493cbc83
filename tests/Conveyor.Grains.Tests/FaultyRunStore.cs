using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Runs;

namespace Conveyor.Grains.Tests;

/// <summary>
/// Wraps the silo's real run store and, when armed, holds the next write of one run until the test releases it,
/// then lets it through or fails it as a Redis outage does: the write lost, or stored with its reply lost.
/// </summary>
internal sealed class FaultyRunStore(IRunStore inner) : IRunStore
{
    /// <summary>The real store.</summary>
    public IRunStore Inner => inner;

    private readonly Lock _lock = new();
    private readonly List<(GrainId Grain, int? Steps, bool Plan)> _writes = [];
    private readonly Dictionary<GrainId, string> _lastWritten = [];
    private ArmedFault? _armed;

    /// <summary>Every write so far: which run, how many steps it stored (null: all) and whether it stored the plan.</summary>
    public IReadOnlyList<(GrainId Grain, int? Steps, bool Plan)> Writes
    {
        get
        {
            lock (_lock)
            {
                return [.. _writes];
            }
        }
    }

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

    /// <summary>The whole run as it was when its last successful write was made (JSON), however little that write stored.</summary>
    public string LastWritten(GrainId grain)
    {
        lock (_lock)
        {
            return _lastWritten[grain];
        }
    }

    public Task<StoredRun?> ReadAsync(GrainId grain) => inner.ReadAsync(grain);

    public Task DeleteAsync(GrainId grain) => inner.DeleteAsync(grain);

    public async Task<string> WriteAsync(GrainId grain, RunState run, string? expectedVersion, RunChanges changes)
    {
        ArmedFault? fault;
        lock (_lock)
        {
            _writes.Add((grain, changes.Steps?.Count, changes.IncludePlan));
            fault = _armed?.Grain == grain ? _armed : null;
            if (fault is not null)
            {
                _armed = null;
            }
        }

        if (fault is null || fault.Mode == WriteFault.None)
        {
            if (fault is not null)
            {
                fault.Held.TrySetResult();
                await fault.Release.Task;
            }

            var json = System.Text.Json.JsonSerializer.Serialize(run);
            var version = await inner.WriteAsync(grain, run, expectedVersion, changes);
            lock (_lock)
            {
                _lastWritten[grain] = json;
            }

            return version;
        }

        fault.Held.TrySetResult();
        await fault.Release.Task;

        if (fault.Mode == WriteFault.StoredButFailed)
        {
            // The caller never learns that the write landed, nor its new version.
            await inner.WriteAsync(grain, run, expectedVersion, changes);
        }

        if (fault.Mode == WriteFault.RedisUnreachable)
        {
            throw new StackExchange.Redis.RedisConnectionException(StackExchange.Redis.ConnectionFailureType.UnableToConnect, $"injected: no connection writing {grain}");
        }

        throw new InvalidOperationException($"injected storage fault writing {grain}");
    }

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

    /// <summary>Not stored; the caller sees Redis' own connection error.</summary>
    RedisUnreachable,
}
