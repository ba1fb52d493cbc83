using System.Diagnostics;
using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Runs.Engine;
using Conveyor.Grains.Telemetry;
using Microsoft.Extensions.Logging;

namespace Conveyor.Grains.Runs;

/// <summary>
/// One pipeline run, as a grain: the shell around its <see cref="RunStateMachine"/>, which holds every rule. The shell
/// serialises calls through one gate (with group commit for results), loads the state and builds a machine over it,
/// hands it inputs, stores what each decision changed, and only then carries out the decision's effects — dispatches,
/// cancel messages, index and events, admission, keepalive and timer. A silo can die at any instant: dispatches decided
/// but not confirmed are re-published on reactivation with the same <c>Nats-Msg-Id</c>, a result is applied at most once
/// per (step, attempt), due times live in the state and are re-armed on activation, and a reminder keeps a run with
/// pending work alive across silo loss until it ends.
/// </summary>
internal sealed partial class PipelineRunGrain(
    RunServices services,
    IGrainFactory grains,
    ILogger<PipelineRunGrain> logger) : Grain, IPipelineRunGrain, IRemindable, IDisposable
{
    private const string KeepAliveReminder = "keepalive";

    private readonly List<(DriverResultInput Result, TaskCompletionSource<ApplyOutcome> Done)> _incoming = [];

    // ApplyResultAsync interleaves (group commit), so every change of the run goes through this gate: grain turns are
    // single-threaded, but a turn that awaits a write must not see another change the state under it.
    private readonly SemaphoreSlim _gate = new(1, 1);
    private bool _committing;
    private bool _stale;
    private long _publishedEpoch;

    // The run and its rules; null when no run is stored. _exists turns true with the first successful write.
    private RunStateMachine? _machine;
    private bool _exists;

    // The version storage holds (null: nothing stored in the store's own layout yet, so the next write is whole).
    private string? _version;

    // Whether storage holds this run finished with nothing left to do (see LeaveIfSettledAsync), and whether this
    // activation stopped the keepalive (a settled record implies an earlier activation did).
    private bool _settledStored;
    private bool _keepAliveStopped;

    private RunStateMachine Machine => _machine!;

    private RunState Run => _machine!.Run;

    /// <inheritdoc />
    public void Dispose() => _gate.Dispose();

    /// <inheritdoc />
    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _publishedEpoch = services.Dispatcher.ConnectionEpoch;
        await LoadAsync();
        if (_machine is { HasPendingWork: true })
        {
            // Whatever the previous activation decided but did not confirm (dispatches, the index entry, events) is
            // redone, and every due time is re-armed from state.
            ArmTimer(TimeSpan.Zero);
        }
        else if (_settledStored)
        {
            // Loaded for a read (or a retry): it answers for a while, then goes again.
            LeaveLater();
        }
    }

    /// <inheritdoc />
    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        services.Metrics.Forget(this.GetPrimaryKey());
        return Task.CompletedTask;
    }

    /// <summary>Replaces the in-memory run with what storage holds, and a machine over it.</summary>
    private async Task LoadAsync()
    {
        var stored = await ReadStoredAsync();
        _machine = stored is null ? null : new RunStateMachine(stored.Run, services.Machine);
        _exists = stored is not null;
        _version = stored?.Version;
        _settledStored = _exists && IsSettled(Run);
        _keepAliveStopped = _settledStored;
    }

    /// <inheritdoc />
    public async Task PrepareAsync(RunPlan plan)
    {
        await EnterAsync();
        try
        {
            ArgumentNullException.ThrowIfNull(plan);
            if (_exists)
            {
                return;
            }

            await CreateNewAsync(plan);
            // The status index and the queued event wait for the start, which follows at once and sends them with its
            // own; if it never comes, the keepalive's commit check does (both are redone from state).
            await DecideAsync(PrepareRun.Instance);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <inheritdoc />
    public async Task<CreateRunResult> CreateAsync(RunPlan plan)
    {
        await EnterAsync();
        try
        {
            ArgumentNullException.ThrowIfNull(plan);
            if (_exists)
            {
                return new CreateRunResult { Run = Run, Created = false };
            }

            await CreateNewAsync(plan);
            // Nothing outside the run has to commit first, so it is stored committed and started in the same turn.
            await CommitAndStartAsync();
            return new CreateRunResult { Run = Run, Created = true };
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <inheritdoc />
    public async Task StartAsync()
    {
        await EnterAsync();
        try
        {
            if (!_exists)
            {
                throw new InvalidOperationException($"run {this.GetPrimaryKey()} was never prepared");
            }

            await CommitAndStartAsync();
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// A new run in memory, and what must exist before its state does: its index entry (an entry without a run behind
    /// it is dropped by the next listing; a run without one is never listed) and its keepalive reminder. Independent,
    /// so they overlap.
    /// </summary>
    private async Task CreateNewAsync(RunPlan plan)
    {
        _machine = RunStateMachine.Create(this.GetPrimaryKey(), plan, services.Time.GetUtcNow(), services.Machine);
        _version = null;
        await Task.WhenAll(services.Index.AddAsync(Machine.Summary()), RegisterKeepAliveAsync());
    }

    /// <summary>Commits the run and starts it (or queues it), in the span of its start.</summary>
    private async Task CommitAndStartAsync()
    {
        if (Run.Committed)
        {
            return;
        }

        using var activity = StartRunActivity("start");
        await DecideAsync(new StartRun(TraceOf(activity)));
    }

    /// <inheritdoc />
    public async Task AdmitAsync()
    {
        await EnterAsync();
        try
        {
            if (_exists)
            {
                await DecideAsync(SlotGranted.Instance);
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <inheritdoc />
    public async Task SupersedeAsync(Guid newerRunId)
    {
        await EnterAsync();
        try
        {
            if (_exists)
            {
                await DecideAsync(new Superseded(newerRunId));
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <inheritdoc />
    public async Task<RunState> CancelAsync(string reason, string? actor = null)
    {
        await EnterAsync();
        try
        {
            EnsureExists();
            if (!Run.Status.IsTerminal())
            {
                // Stored with the cancellation's own write.
                Run.CancelledBy = actor;
            }

            await DecideAsync(new CancelRun(reason ?? ""));
            return Run;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <inheritdoc />
    public async Task<RunState> RetryAsync(string? actor = null)
    {
        await EnterAsync();
        try
        {
            EnsureExists();
            if (Run.Status is RunStatus.Failed or RunStatus.Cancelled or RunStatus.TimedOut)
            {
                // Stored with the retry's own write.
                Run.RetriedBy = actor;
            }

            using var activity = StartRunActivity("retry");
            await DecideAsync(new RetryRun(TraceOf(activity)));
            activity?.SetTag("conveyor.run.attempt", Run.RunAttempt);
            return Run;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <inheritdoc />
    public Task<ApplyOutcome> ApplyResultAsync(DriverResultInput result)
    {
        ArgumentNullException.ThrowIfNull(result);
        NoteResultContext();
        var done = new TaskCompletionSource<ApplyOutcome>(TaskCreationOptions.RunContinuationsAsynchronously);
        _incoming.Add((result, done));
        if (!_committing)
        {
            _committing = true;
            _ = CommitResultsAsync();
        }

        return done.Task;
    }

    /// <summary>
    /// Applies every queued result, stores them with one write, then answers each caller and acts on the transition;
    /// repeats while results keep arriving. Under fan-out this turns N writes into a handful.
    /// </summary>
    private async Task CommitResultsAsync()
    {
        await _gate.WaitAsync();
        try
        {
            var storageChecked = false;
            while (_incoming.Count > 0)
            {
                var batch = _incoming.ToArray();
                _incoming.Clear();
                RunDecision decision;
                try
                {
                    await ReloadIfStaleAsync();
                    ThrowIfUnreadable();
                    if (!_exists)
                    {
                        DeactivateOnIdle();
                        foreach (var (_, done) in batch)
                        {
                            done.TrySetResult(ApplyOutcome.UnknownRun);
                        }

                        continue;
                    }

                    decision = Machine.Apply(new ApplyResults(Array.ConvertAll(batch, b => b.Result)), services.Time.GetUtcNow());
                    if (!decision.Persist && !storageChecked && decision.Outcomes!.Any(o => o is ApplyOutcome.Stale or ApplyOutcome.Duplicate))
                    {
                        // A result is about to be dropped, and no write will check this activation's state against
                        // storage. Another activation of the run may have moved it on meanwhile (there can briefly be two
                        // while silos cannot agree on membership, as when Redis is unreachable): the result may answer
                        // the attempt that one dispatched. Dropped against an outdated state, it would be acknowledged and
                        // lost, and the run would wait for it until the step's timeout. So storage is asked first.
                        storageChecked = true;
                        if (!await HoldsStoredVersionAsync())
                        {
                            _stale = true;
                            _incoming.InsertRange(0, batch);
                            continue;
                        }
                    }

                    await CommitAsync(decision);
                }
                catch (Exception ex)
                {
                    foreach (var (_, done) in batch)
                    {
                        done.TrySetException(ex);
                    }

                    continue;
                }

                for (var i = 0; i < batch.Length; i++)
                {
                    batch[i].Done.TrySetResult(decision.Outcomes![i]);
                }

                await ExecuteAsync(decision.Effects);
            }

            await LeaveIfSettledAsync();
        }
        finally
        {
            _committing = false;
            _gate.Release();
        }
    }

    /// <summary>Whether storage still holds the version this activation last read or wrote.</summary>
    private async Task<bool> HoldsStoredVersionAsync() => (await services.Store.ReadAsync(this.GetGrainId()))?.Version == _version;

    /// <inheritdoc />
    public Task<RunState?> GetAsync()
    {
        ThrowIfUnreadable();
        return Task.FromResult(_exists ? Run : null);
    }

    /// <inheritdoc />
    public async Task<RunSummary?> GetSummaryAsync()
    {
        ThrowIfUnreadable();
        if (!_exists)
        {
            DeactivateOnIdle();
            return null;
        }

        await SyncIndexAsync();
        return Machine.Summary();
    }

    /// <inheritdoc />
    public Task<Dictionary<string, string>> GetDriverResultsAsync() =>
        Task.FromResult(_exists ? Machine.DriverResults() : []);

    /// <inheritdoc />
    public async Task ReceiveReminder(string reminderName, TickStatus status)
    {
        await EnterAsync();
        try
        {
            if (!_exists)
            {
                await StopKeepAliveAsync();
                return;
            }

            NoteReconnect();
            await DecideAsync(KeepAliveTick.Instance);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>The timer fired.</summary>
    private async Task WakeAsync()
    {
        await EnterAsync();
        try
        {
            if (_exists)
            {
                NoteReconnect();
                await DecideAsync(Tick.Instance);
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Tells an active run that NATS re-opened its connection since this activation last looked.</summary>
    private void NoteReconnect()
    {
        var epoch = services.Dispatcher.ConnectionEpoch;
        if (epoch != _publishedEpoch && Machine.Active)
        {
            _publishedEpoch = epoch;
            Machine.Apply(Reconnected.Instance, services.Time.GetUtcNow());
        }
    }

    /// <summary>
    /// Hands one input to the machine; a refused command is a conflict. Otherwise stores what it changed, then
    /// carries out what it decided.
    /// </summary>
    private async Task DecideAsync(RunInput input)
    {
        var decision = Machine.Apply(input, services.Time.GetUtcNow());
        if (decision.Refusal is { } refusal)
        {
            throw new ConveyorConflictException(refusal);
        }

        await CommitAsync(decision);
        await ExecuteAsync(decision.Effects);
        await LeaveIfSettledAsync();
    }

    /// <summary>What must exist first, then the write (when the state changed), then the decision's log lines.</summary>
    private async Task CommitAsync(RunDecision decision)
    {
        foreach (var effect in decision.BeforeWrite)
        {
            try
            {
                await ExecuteAsync([effect]);
            }
            catch
            {
                // The machine already holds the decided state, which will not be stored: reload before the next call.
                _stale = true;
                DeactivateOnIdle();
                throw;
            }
        }

        if (decision.Persist)
        {
            await PersistAsync(decision.Reports);
        }

        LogNotes(decision.Notes);
    }

    /// <summary>
    /// Writes the changed steps and the header. If the write fails, memory may hold changes storage does not: the
    /// activation is dropped so the next call reloads what is really stored (the callers' results come back by redelivery).
    /// </summary>
    private async Task PersistAsync(IReadOnlyList<RunReport> reports)
    {
        try
        {
            var changes = _version is null ? RunChanges.All : new RunChanges([.. Machine.ChangedSteps], IncludePlan: false);
            _version = await services.Store.WriteAsync(this.GetGrainId(), Run, _version, changes);
            _exists = true;
            _settledStored = IsSettled(Run) && _keepAliveStopped;
            Machine.Stored();
        }
        catch
        {
            // Calls that interleave before the deactivation must not act on (or ack results against) the unsaved
            // changes: the next gated call reloads what storage holds.
            _stale = true;
            DeactivateOnIdle();
            throw;
        }

        Record(reports);
    }

    /// <summary>
    /// Takes the gate, with the state reloaded from storage if the last write failed or the record could not be read;
    /// a record that still cannot be read is an error unless <paramref name="allowUnreadable"/>.
    /// </summary>
    private async Task EnterAsync(bool allowUnreadable = false)
    {
        await _gate.WaitAsync();
        try
        {
            await ReloadIfStaleAsync();
            if (!allowUnreadable)
            {
                ThrowIfUnreadable();
            }
        }
        catch
        {
            _gate.Release();
            throw;
        }
    }

    private async Task ReloadIfStaleAsync()
    {
        if (!_stale && _unreadable is null)
        {
            return;
        }

        await LoadAsync();
        _stale = false;
    }

    private void EnsureExists()
    {
        if (!_exists)
        {
            DeactivateOnIdle();
            throw new ConveyorNotFoundException($"run {this.GetPrimaryKey()} not found");
        }
    }

    /// <summary>Starts the span of a run's start or retry.</summary>
    private Activity? StartRunActivity(string kind)
    {
        var activity = ConveyorTelemetry.Source.StartActivity(ConveyorTelemetry.RunStartActivity, ActivityKind.Internal, ConveyorTelemetry.CallerContext());
        if (activity is not null)
        {
            activity.SetTag("conveyor.run.id", Run.RunId.ToString());
            activity.SetTag("conveyor.run.attempt", Run.RunAttempt);
            activity.SetTag("conveyor.pipeline", Run.Plan.Pipeline.Name);
            activity.SetTag("conveyor.namespace", Run.Plan.Namespace);
            activity.SetTag("conveyor.run.kind", kind);
        }

        return activity;
    }

    /// <summary>The trace a run (re)started in <paramref name="activity"/> continues: the span, else the caller's; null keeps the stored one.</summary>
    private static string? TraceOf(Activity? activity) => activity?.Id ?? ConveyorTelemetry.Format(ConveyorTelemetry.CallerContext());
}
