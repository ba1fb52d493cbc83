using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Flow;
using Conveyor.Grains.Runs.Engine;
using StackExchange.Redis;

namespace Conveyor.Grains.Runs;

/// <summary>
/// A run's life after its last step: heartbeats that keep an attempt alive, filing for retention, deletion (archived
/// first), and a stored record that cannot be read.
/// </summary>
internal sealed partial class PipelineRunGrain
{
    // Why the stored run could not be read (a corrupt record, a layout this version does not know); null when it could.
    private Exception? _unreadable;

    // Fires when a settled finished run has stayed its residence.
    private IGrainTimer? _leaveTimer;

    /// <inheritdoc />
    public async Task HeartbeatAsync(string step, int attempt, TimeSpan? interval)
    {
        await EnterAsync();
        try
        {
            if (_exists)
            {
                await DecideAsync(new Heartbeat(step, attempt, interval));
            }
            else
            {
                DeactivateOnIdle();
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <inheritdoc />
    public async Task<bool> DeleteAsync()
    {
        await EnterAsync(allowUnreadable: true);
        try
        {
            var runId = this.GetPrimaryKey();
            if (_unreadable is not null)
            {
                // Nothing can be archived or looked up; what is known by the id alone goes.
                await services.Logs.PurgeAsync(runId.ToString());
                await services.Store.DeleteAsync(this.GetGrainId());
                await StopKeepAliveAsync();
                ForgetRun();
                return true;
            }

            if (!_exists)
            {
                DeactivateOnIdle();
                return false;
            }

            if (!Run.Status.IsTerminal())
            {
                throw new ConveyorConflictException($"run {runId} is {Run.Status}; only a finished run can be deleted (cancel it first)");
            }

            // Archive first: a crash after it repeats the deletion, never loses the run. The due entry goes last, so
            // the sweeper comes back for whatever a crash left.
            if (services.Archive.IsEnabled)
            {
                await services.Archive.ArchiveAsync(Run);
            }

            await services.Logs.PurgeAsync(runId.ToString());
            if (Run.AdmissionKey is { } queue)
            {
                await grains.GetGrain<IAdmissionGrain>(queue).ReleaseAsync(runId);
            }

            await services.Store.DeleteAsync(this.GetGrainId());
            await StopKeepAliveAsync();
            var (ns, pipeline) = (Run.Plan.Namespace, Run.Plan.Pipeline.Name);
            await services.Index.RemoveAsync(ns, pipeline, runId);
            await services.Retention.ForgetAsync(ns, pipeline, runId);
            ForgetRun();
            LogDeleted(logger, runId, ns, pipeline);
            return true;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// A finished run with nothing left to do — its events out, its index entry filed, its slot back and its keepalive
    /// gone — stays for the reads that follow its end, then stores that it is settled and leaves memory. Left to the
    /// idle collector, every finished run would stay resident for the collection age (at a few hundred runs a second,
    /// gigabytes, and more for the GC to go through); without the settled write, its next activation (a read, a retry)
    /// would publish its last events again, after JetStream stopped de-duplicating them. The write waits for the
    /// departure so it is off the path of the runs that follow; a silo that dies meanwhile leaves the run as it was
    /// before this existed (its next activation redoes that upkeep, de-duplicated within the window).
    /// </summary>
    private async Task LeaveIfSettledAsync()
    {
        if (!CanLeave())
        {
            return;
        }

        DisposeTimer();
        if (services.FinishedRunResidence <= TimeSpan.Zero)
        {
            await SettleAndLeaveAsync();
            return;
        }

        LeaveLater();
    }

    /// <summary>Leaves memory after <see cref="RunServices.FinishedRunResidence"/> (a timer that does not keep the activation alive).</summary>
    private void LeaveLater() =>
        _leaveTimer ??= this.RegisterGrainTimer(
            static (grain, _) => grain.LeaveAsync(),
            this,
            new GrainTimerCreationOptions(services.FinishedRunResidence, Timeout.InfiniteTimeSpan) { KeepAlive = false });

    private async Task LeaveAsync()
    {
        _leaveTimer?.Dispose();
        _leaveTimer = null;
        await EnterAsync(allowUnreadable: true);
        try
        {
            // A retry since then made it a live run again: it stays.
            if (CanLeave())
            {
                await SettleAndLeaveAsync();
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Stores the settled run (unless storage already holds it so) and deactivates; a failed write leaves storage as it was, for the next activation to redo.</summary>
    private async Task SettleAndLeaveAsync()
    {
        if (!_settledStored)
        {
            try
            {
                await PersistAsync([]);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogSettleFailed(logger, ex, Run.RunId);
                return;
            }
        }

        DeactivateOnIdle();
    }

    private bool CanLeave() => _exists && !_stale && _unreadable is null && _keepAliveStopped && IsSettled(Run);

    /// <summary>Finished, with its events published and its index entry filed under its last status.</summary>
    private bool IsSettled(RunState run) =>
        run.Status.IsTerminal() && run.Outbox.Count == 0 && run.EventOutbox.Count == 0 && (run.IndexedStatus == run.Status || !services.Index.IsAvailable);

    /// <summary>The run is gone: this activation holds nothing and goes away.</summary>
    private void ForgetRun()
    {
        services.Metrics.Forget(this.GetPrimaryKey());
        _machine = null;
        _exists = false;
        _version = null;
        _unreadable = null;
        DeactivateOnIdle();
    }

    /// <summary>
    /// Files a run that ended for retention, with its index entry (so both are redone from state if either fails), and
    /// takes a run that started again out.
    /// </summary>
    private async Task SyncRetentionAsync(RunSummary summary, RunStatus? indexedBefore)
    {
        if (!services.Retention.IsAvailable)
        {
            return;
        }

        if (summary.Status.IsTerminal())
        {
            await services.Retention.FileAsync(summary, services.Time.GetUtcNow());
        }
        else if (indexedBefore is { } was && was.IsTerminal())
        {
            await services.Retention.ForgetAsync(summary.Namespace, summary.Pipeline, summary.RunId);
        }
    }

    /// <summary>
    /// Reads the run; a record that cannot be read (as opposed to storage that cannot be reached) leaves the activation
    /// "unreadable": every call then says so clearly, and is retried by reading again.
    /// </summary>
    private async Task<StoredRun?> ReadStoredAsync()
    {
        try
        {
            var stored = await services.Store.ReadAsync(this.GetGrainId());
            _unreadable = null;
            return stored;
        }
        catch (Exception ex) when (!IsTransient(ex))
        {
            _unreadable = ex;
            LogUnreadable(logger, ex, this.GetPrimaryKey());
            return null;
        }
    }

    private static bool IsTransient(Exception ex) =>
        ex is RedisConnectionException or RedisTimeoutException or TimeoutException or OperationCanceledException or ObjectDisposedException
        || (ex is RedisServerException server && server.Message.StartsWith("LOADING", StringComparison.Ordinal));

    /// <summary>Throws the clear error of an unreadable run.</summary>
    private void ThrowIfUnreadable()
    {
        if (_unreadable is { } ex)
        {
            throw new RunUnreadableException(
                $"run {this.GetPrimaryKey()} is stored but cannot be read ({ex.GetType().Name}: {ex.Message}); its results are retried, then dead-lettered, and DELETE /runs/{this.GetPrimaryKey()} removes it");
        }
    }
}
