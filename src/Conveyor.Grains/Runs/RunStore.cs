using Conveyor.Grains.Abstractions;
using Orleans.Storage;

namespace Conveyor.Grains.Runs;

/// <summary>A run as storage holds it, with the version a conditional write must name.</summary>
/// <param name="Run">The run.</param>
/// <param name="Version">Opaque version of what was read; null when the run must be written whole next time.</param>
internal sealed record StoredRun(RunState Run, string? Version);

/// <summary>What one write of a run stores.</summary>
/// <param name="Steps">The steps that changed since the last write; null for every step.</param>
/// <param name="IncludePlan">Whether the (immutable) plan is written too: on the run's first write.</param>
internal sealed record RunChanges(IReadOnlyCollection<StepState>? Steps, bool IncludePlan)
{
    /// <summary>Everything: a new run, or one whose stored layout is not known.</summary>
    public static RunChanges All { get; } = new(null, true);
}

/// <summary>
/// Where run grains keep their state. Every write is conditional on the version last read or written, so two
/// activations of one run (a split brain during a silo failure) can never both commit; a conflict or a failed write
/// surfaces as an exception and the grain reloads what is stored. An implementation may store only what changed.
/// </summary>
internal interface IRunStore
{
    /// <summary>Reads a run; null when none is stored.</summary>
    Task<StoredRun?> ReadAsync(GrainId grain);

    /// <summary>
    /// Stores <paramref name="run"/> if storage still holds <paramref name="expectedVersion"/> (null: nothing stored
    /// yet); returns the new version. <see cref="RunStoreConflictException"/> when storage moved on.
    /// </summary>
    Task<string> WriteAsync(GrainId grain, RunState run, string? expectedVersion, RunChanges changes);

    /// <summary>Deletes the run's stored record, in every layout it may be in (idempotent).</summary>
    Task DeleteAsync(GrainId grain);
}

/// <summary>Storage holds a newer version of the run than the writer read: another activation wrote it.</summary>
internal sealed class RunStoreConflictException(string message) : Exception(message);

/// <summary>
/// <see cref="IRunStore"/> over the Orleans grain storage provider <see cref="ConveyorStorage.Name"/>, for hosts that
/// keep grain state somewhere other than Redis: each write stores the whole run, under the provider's ETag.
/// </summary>
internal sealed class GrainStorageRunStore(IGrainStorage storage) : IRunStore
{
    /// <summary>The state name runs have always been stored under.</summary>
    public const string StateName = "run";

    /// <inheritdoc />
    public async Task<StoredRun?> ReadAsync(GrainId grain)
    {
        var state = new GrainState<RunState>();
        await storage.ReadStateAsync(StateName, grain, state).ConfigureAwait(false);
        return state.RecordExists && state.State is { } run ? new StoredRun(run, state.ETag ?? "") : null;
    }

    /// <inheritdoc />
    public async Task<string> WriteAsync(GrainId grain, RunState run, string? expectedVersion, RunChanges changes)
    {
        ArgumentNullException.ThrowIfNull(run);
        var state = new GrainState<RunState>(run, expectedVersion) { RecordExists = expectedVersion is not null };
        try
        {
            await storage.WriteStateAsync(StateName, grain, state).ConfigureAwait(false);
        }
        catch (InconsistentStateException ex)
        {
            throw new RunStoreConflictException($"run {grain} was written by another activation: {ex.Message}");
        }

        return state.ETag ?? "";
    }

    /// <inheritdoc />
    public async Task DeleteAsync(GrainId grain)
    {
        var state = new GrainState<RunState>();
        await storage.ReadStateAsync(StateName, grain, state).ConfigureAwait(false);
        if (state.RecordExists)
        {
            await storage.ClearStateAsync(StateName, grain, state).ConfigureAwait(false);
        }
    }
}
