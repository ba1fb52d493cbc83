using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Events;
using Conveyor.Grains.Flow;
using Conveyor.Grains.Nats;
using Conveyor.Grains.Resources;
using Conveyor.Grains.Telemetry;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using NATS.Client.Core;

namespace Conveyor.Grains.Runs;

/// <summary>
/// One pipeline run: a durable DAG state machine with retries, timeouts and cancellation. Every transition is persisted
/// before its side effects (dispatches, cancel messages, index updates) happen: dispatches decided but not confirmed are
/// re-published on reactivation with the same <c>Nats-Msg-Id</c>, and a result is applied at most once per
/// (step, attempt). Due times (backoff, attempt and run deadlines) live in state and are re-armed on activation; a
/// reminder keeps a run with pending work alive across silo loss and is removed when the run ends.
/// </summary>
/// <remarks>
/// A transition costs O(what it changes), not O(steps): the DAG's readiness is kept as per-step counts of unmet
/// dependencies, due times in a heap, in-flight and unpublished steps in sets, and a write stores only the steps it
/// changed (<see cref="IRunStore"/>). All of that is derived from the state and rebuilt whenever the state is loaded
/// or replaced, in <see cref="Rebuild"/> only.
/// </remarks>
public sealed partial class PipelineRunGrain(
    IRunStore store,
    IGrainFactory grains,
    DriverDispatcher dispatcher,
    IRunIndex index,
    IOptions<RunEngineOptions> options,
    IOptions<FlowControlOptions> flow,
    TimeProvider time,
    ConveyorMetrics metrics,
    CDEventPublisher events,
    ILogger<PipelineRunGrain> logger) : Grain, IPipelineRunGrain, IRemindable, IDisposable
{
    private const string KeepAliveReminder = "keepalive";

    /// <summary>How long a prepared run waits for its resource to commit before it checks on its own.</summary>
    private static readonly TimeSpan CommitGrace = TimeSpan.FromSeconds(30);

    private readonly List<CancelMessage> _cancels = [];
    private readonly List<(DriverResultInput Result, TaskCompletionSource<ApplyOutcome> Done)> _incoming = [];

    // ApplyResultAsync interleaves (group commit), so every mutation of the run goes through this gate: grain turns
    // are single-threaded, but a turn that awaits a write must not see another change the state under it.
    private readonly SemaphoreSlim _gate = new(1, 1);
    private bool _committing;
    private IGrainTimer? _timer;
    private IGrainReminder? _reminder;
    private bool _waitingForDriver;
    private bool _stale;
    private long _publishedEpoch;

    private RunState _run = new();
    private bool _exists;

    // The version storage holds (null: nothing stored in the store's own layout yet, so the next write is whole).
    private string? _version;

    // Derived from _run by Rebuild(); never kept across a replacement of _run.
    private readonly HashSet<StepState> _dirty = new(ReferenceEqualityComparer.Instance);
    private readonly HashSet<StepState> _inFlight = new(ReferenceEqualityComparer.Instance);
    private readonly HashSet<StepState> _unpublished = new(ReferenceEqualityComparer.Instance);
    private readonly Queue<StepState> _settled = new();
    private readonly PriorityQueue<StepState, DateTimeOffset> _due = new();
    private readonly Dictionary<StepState, int> _unmet = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<string, (int Order, string Json)> _latestResults = new(StringComparer.Ordinal);
    private readonly Dictionary<StepState, int> _index = new(ReferenceEqualityComparer.Instance);
    private Dictionary<string, StepSpec> _specs = new(StringComparer.Ordinal);
    private Dictionary<string, StepState> _steps = new(StringComparer.Ordinal);
    private Dictionary<string, List<StepState>> _dependents = new(StringComparer.Ordinal);
    private int _unsettled;
    private bool _needsFullPass;

    private RunState Run => _run;

    private Dictionary<string, StepState> StepsById => _steps;

    private StepState StepById(string id) => _steps[id];

    private Dictionary<string, StepSpec> Specs => _specs;

    private bool Active => _exists && Run.Committed && !Run.Status.IsTerminal();

    /// <inheritdoc />
    public void Dispose() => _gate.Dispose();

    /// <inheritdoc />
    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _publishedEpoch = dispatcher.ConnectionEpoch;
        await LoadAsync();
        if (Active || (_exists && Run.IndexedStatus != Run.Status))
        {
            // Whatever the previous activation decided but did not confirm (dispatches, the index entry) is redone,
            // and every due time is re-armed from state.
            ArmTimer(TimeSpan.Zero);
        }
        else if (_exists && Run.Outbox.Count > 0)
        {
            // Events of a transition stored just before the previous activation died.
            ArmTimer(TimeSpan.Zero);
        }
    }

    /// <summary>Replaces the in-memory run with what storage holds.</summary>
    private async Task LoadAsync()
    {
        var stored = await store.ReadAsync(this.GetGrainId());
        _run = stored?.Run ?? new RunState();
        _exists = stored is not null;
        _version = stored?.Version;
        Rebuild();
    }

    /// <summary>
    /// Derives every lookup from <see cref="_run"/>: by id, dependents, unmet dependencies, in-flight and unpublished
    /// steps, due times, the latest result per driver. O(steps + edges), once per load or replacement of the state; a
    /// lookup kept across a replacement would steer transitions into the discarded copy.
    /// </summary>
    private void Rebuild()
    {
        _dirty.Clear();
        _inFlight.Clear();
        _unpublished.Clear();
        _settled.Clear();
        _due.Clear();
        _unmet.Clear();
        _latestResults.Clear();
        _index.Clear();
        _specs = Run.Plan.Pipeline.Steps.ToDictionary(s => s.Id, StringComparer.Ordinal);
        _steps = new Dictionary<string, StepState>(Run.Steps.Count, StringComparer.Ordinal);
        _dependents = new Dictionary<string, List<StepState>>(StringComparer.Ordinal);
        _unsettled = 0;
        foreach (var step in Run.Steps)
        {
            _steps[step.Id] = step;
            _index[step] = _index.Count;
        }

        foreach (var step in Run.Steps)
        {
            foreach (var dep in Specs[step.Id].DependsOn)
            {
                (_dependents.TryGetValue(dep, out var list) ? list : _dependents[dep] = []).Add(step);
            }

            Track(step);
            if (step.ResultJson is not null)
            {
                NoteResult(step);
            }

            if (step.Attempts.Exists(a => !a.StartReported || (a.FinishedAt is not null && !a.FinishReported)))
            {
                _dirty.Add(step);
            }
        }

        // Readiness is settled by one full pass before the first incremental transition (see Advance).
        _needsFullPass = true;
    }

    /// <summary>Files a step under its status in the derived lookups (not in <see cref="_unmet"/>: the full pass sets those).</summary>
    private void Track(StepState step)
    {
        if (!step.Status.IsTerminal())
        {
            _unsettled++;
        }

        if (step.Status.IsInFlight())
        {
            _inFlight.Add(step);
            if (step.Current is { Published: false })
            {
                _unpublished.Add(step);
            }

            if (step.DeadlineAt is { } deadline)
            {
                _due.Enqueue(step, deadline);
            }
        }
        else if (step.Status == StepStatus.Retrying && step.NextAttemptAt is { } next)
        {
            _due.Enqueue(step, next);
        }
    }

    /// <summary>Marks a step to be written by the next persist.</summary>
    private void Touch(StepState step) => _dirty.Add(step);

    /// <summary>Every status change of a step goes through here, so the derived lookups follow it.</summary>
    private void SetStatus(StepState step, StepStatus status)
    {
        var was = step.Status;
        Touch(step);
        if (was == status)
        {
            return;
        }

        step.Status = status;
        if (was.IsInFlight() && !status.IsInFlight())
        {
            _inFlight.Remove(step);
            _unpublished.Remove(step);
        }
        else if (!was.IsInFlight() && status.IsInFlight())
        {
            _inFlight.Add(step);
        }

        if (!was.IsTerminal() && status.IsTerminal())
        {
            _unsettled--;
            _settled.Enqueue(step);
        }
        else if (was.IsTerminal() && !status.IsTerminal())
        {
            _unsettled++;
        }
    }

    /// <summary>Remembers a step's result as its driver's latest, for the <c>driverresults.*</c> of later payloads.</summary>
    private void NoteResult(StepState step)
    {
        var driver = Specs[step.Id].Driver;
        if (!_latestResults.TryGetValue(driver, out var latest) || latest.Order < step.CompletionOrder)
        {
            _latestResults[driver] = (step.CompletionOrder, step.ResultJson!);
        }
    }

    /// <inheritdoc />
    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        metrics.Forget(this.GetPrimaryKey());
        return Task.CompletedTask;
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

            Initialize(plan);

            await RegisterAsync();
            // The status index and the queued event wait for the start, which follows at once and sends them with its
            // own; if it never comes, the reminder's commit check does (both are redone from state).
            await PersistAsync();
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

            Initialize(plan);

            await RegisterAsync();
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
            await StartCoreAsync();
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// What must exist before a new run's state does: its index entry (an entry without a run behind it is dropped by
    /// the next listing; a run without one is never listed) and its keepalive reminder. Independent, so they overlap.
    /// </summary>
    private async Task RegisterAsync()
    {
        var reminder = this.RegisterOrUpdateReminder(KeepAliveReminder, options.Value.KeepAlivePeriod, options.Value.KeepAlivePeriod);
        await Task.WhenAll(index.AddAsync(Summary()), reminder);
        _reminder = await reminder;
    }

    /// <summary>A new run of <paramref name="plan"/>, in memory; the caller stores it.</summary>
    private void Initialize(RunPlan plan)
    {
        _run = new RunState
        {
            RunId = this.GetPrimaryKey(),
            Plan = plan,
            Status = RunStatus.Pending,
            CreatedAt = time.GetUtcNow(),
            RunAttempt = 1,
            Steps = plan.Pipeline.Steps.Select(s => new StepState { Id = s.Id }).ToList(),
        };
        _version = null;
        Rebuild();
    }

    private async Task StartCoreAsync()
    {
        if (!_exists)
        {
            throw new InvalidOperationException($"run {this.GetPrimaryKey()} was never prepared");
        }

        if (Run.Committed)
        {
            return;
        }

        await CommitAndStartAsync();
    }

    /// <summary>Marks the run committed and starts it, or queues it when a concurrency limit applies.</summary>
    private async Task CommitAndStartAsync()
    {
        using var activity = StartRunActivity("start");
        Run.Committed = true;
        await QueueOrBeginAsync();
    }

    /// <summary>
    /// Starts a committed run (first start or retry): at once when no limit applies, otherwise it is stored
    /// <see cref="RunStatus.Queued"/> first and then asks its queue for a slot, so a crash in between leaves a queued run
    /// whose keepalive asks again.
    /// </summary>
    private async Task QueueOrBeginAsync()
    {
        var request = AdmissionRequestFor(out var key);
        if (request is null)
        {
            Run.AdmissionKey = null;
            await BeginAsync();
            return;
        }

        Run.Status = RunStatus.Queued;
        Run.AdmissionKey = key;
        Run.DeadlineAt = null;
        await PersistAsync();
        await SyncIndexAsync();
        await PublishEventsAsync();
        await AcquireAsync();
    }

    /// <summary>Asks the run's queue for a slot (idempotent); starts the run when it gets one.</summary>
    private async Task AcquireAsync()
    {
        AdmissionTicket ticket;
        try
        {
            ticket = await grains.GetGrain<IAdmissionGrain>(Run.AdmissionKey!).AcquireAsync(AdmissionRequestFor(out _)!);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Stored as Queued: the keepalive reminder asks again.
            LogAdmissionFailed(logger, ex, Run.RunId, Run.AdmissionKey!);
            return;
        }

        if (ticket.Admitted)
        {
            await BeginAsync();
        }
        else if (ticket.Superseded)
        {
            await EndAndActAsync(RunStatus.Cancelled, SupersededReason(ticket.SupersededBy ?? Guid.Empty));
        }
        else
        {
            LogQueued(logger, Run.RunId, Run.AdmissionKey!, ticket.Position);
        }
    }

    /// <summary>What the run asks its queue for, or null when neither its pipeline nor its namespace limits runs.</summary>
    private AdmissionRequest? AdmissionRequestFor(out string key)
    {
        var pipeline = Run.Plan.Pipeline;
        var ns = Run.Plan.Namespace;
        var nsLimit = flow.Value.LimitFor(ns);
        key = nsLimit is not null ? ns : Names.PipelineKey(ns, pipeline.Name);
        if (Run.AdmissionKey is not null)
        {
            // Once queued, a run stays with its queue (a configuration change applies to later runs).
            key = Run.AdmissionKey;
        }
        else if (nsLimit is null && pipeline.Concurrency is null && pipeline.ConcurrencyGroup is null)
        {
            return null;
        }

        return new AdmissionRequest
        {
            RunId = Run.RunId,
            Pipeline = pipeline.Name,
            Priority = Run.Plan.Priority,
            Group = pipeline.ConcurrencyGroup is { } g ? ConcurrencyKeys.Evaluate(g.Key, Run.Plan.Resource) : null,
            CancelInProgress = pipeline.ConcurrencyGroup?.OnConflict == GroupConflictPolicy.CancelInProgress,
            PipelineLimit = pipeline.Concurrency,
            NamespaceLimit = nsLimit,
        };
    }

    private string SupersededReason(Guid by)
    {
        var g = Run.Plan.Pipeline.ConcurrencyGroup;
        var group = g is null ? "" : $" in concurrency group {g.Key}={ConcurrencyKeys.Evaluate(g.Key, Run.Plan.Resource)}";
        return $"superseded by run {by}{group}";
    }

    /// <summary>The run holds its slot (or needs none): steps start, the run's timeout starts counting.</summary>
    private async Task BeginAsync()
    {
        var now = time.GetUtcNow();
        Run.Status = RunStatus.Running;
        Run.StartedAt ??= now;
        Run.DeadlineAt = now + Run.Plan.Pipeline.Timeout;
        Advance(now);
        await PersistAsync();
        LogRunStarted(logger, Run.RunId, Run.Plan.Pipeline.Name, Run.Plan.Pipeline.Revision);
        await AfterTransitionAsync();
    }

    /// <inheritdoc />
    public async Task AdmitAsync()
    {
        await EnterAsync();
        try
        {
            if (!_exists)
            {
                return;
            }

            if (Run.Status == RunStatus.Queued && Run.Committed)
            {
                await BeginAsync();
            }
            else if (Run.Status.IsTerminal())
            {
                // Admitted after it ended (e.g. cancelled while the admission was on its way): give the slot back.
                await ReleaseSlotAsync();
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
            if (_exists && !Run.Status.IsTerminal())
            {
                await EndAndActAsync(RunStatus.Cancelled, SupersededReason(newerRunId));
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task EndAndActAsync(RunStatus status, string reason)
    {
        EndRun(status, reason, time.GetUtcNow());
        await PersistAsync();
        await AfterTransitionAsync();
    }

    /// <summary>Gives the run's slot back to its queue; false when the queue could not be reached (the keepalive retries).</summary>
    private async Task<bool> ReleaseSlotAsync()
    {
        if (Run.AdmissionKey is not { } key)
        {
            return true;
        }

        try
        {
            await grains.GetGrain<IAdmissionGrain>(key).ReleaseAsync(Run.RunId);
            return true;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LogReleaseFailed(logger, ex, Run.RunId, key);
            return false;
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
    /// Applies every queued result, persists them with one write, then answers each caller and acts on the
    /// transition; repeats while results keep arriving. Under fan-out this turns N writes into a handful.
    /// </summary>
    private async Task CommitResultsAsync()
    {
        await _gate.WaitAsync();
        try
        {
            while (_incoming.Count > 0)
            {
                var batch = _incoming.ToArray();
                _incoming.Clear();
                var outcomes = new ApplyOutcome[batch.Length];
                try
                {
                    await ReloadIfStaleAsync();
                    var now = time.GetUtcNow();
                    var applied = false;
                    for (var i = 0; i < batch.Length; i++)
                    {
                        outcomes[i] = Apply(batch[i].Result, now);
                        applied |= outcomes[i] == ApplyOutcome.Applied;
                    }

                    if (applied)
                    {
                        Advance(now);
                        await PersistAsync();
                    }
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
                    batch[i].Done.TrySetResult(outcomes[i]);
                }

                if (outcomes.Contains(ApplyOutcome.Applied))
                {
                    await AfterTransitionAsync();
                }
            }
        }
        finally
        {
            _committing = false;
            _gate.Release();
        }
    }

    /// <summary>Applies one result in memory; the caller persists.</summary>
    private ApplyOutcome Apply(DriverResultInput result, DateTimeOffset now)
    {
        if (!_exists)
        {
            DeactivateOnIdle();
            return ApplyOutcome.UnknownRun;
        }

        var (step, outcome) = FindStep(result);
        if (step is null)
        {
            return outcome;
        }

        var attempt = step.Current!;
        Touch(step);
        attempt.Published = true;
        attempt.PublishedAt ??= now;
        _unpublished.Remove(step);
        step.ResultJson = JsonSerializer.Serialize(
            new DriverResultEvent
            {
                Success = result.Success,
                Message = result.Message,
                Data = result.Data is null ? null : JsonSerializer.Deserialize<JsonElement>(result.Data),
                Driver = result.Driver,
            },
            ConveyorJson.Context.DriverResultEvent);
        step.CompletionOrder = ++Run.Completions;
        NoteResult(step);
        attempt.Data = result.Data;

        if (result.Success)
        {
            attempt.FinishedAt = now;
            attempt.Success = true;
            attempt.Message = result.Message;
            step.DeadlineAt = null;
            step.Output = result.Data;
            SetStatus(step, StepStatus.Succeeded);
        }
        else
        {
            FailAttempt(step, result.Message, timedOut: false, now);
        }

        LogStepFinished(logger, Run.RunId, step.Id, attempt.Number, step.Status);
        return ApplyOutcome.Applied;
    }

    /// <summary>
    /// Writes the state. If the write fails, memory may hold changes storage does not: the activation is dropped so
    /// the next call reloads what is really stored (the callers' results come back by redelivery).
    /// </summary>
    private async Task PersistAsync()
    {
        CollectTransitions();
        try
        {
            var changes = _version is null ? RunChanges.All : new RunChanges([.. _dirty], IncludePlan: false);
            _version = await store.WriteAsync(this.GetGrainId(), Run, _version, changes);
            _exists = true;
            _dirty.Clear();
        }
        catch
        {
            _afterWrite.Clear();
            // Calls that interleave before the deactivation must not act on (or ack results against) the unsaved
            // changes: the next gated call reloads what storage holds.
            _stale = true;
            DeactivateOnIdle();
            throw;
        }

        ReportAfterWrite();
    }

    /// <summary>Takes the gate, with the state reloaded from storage if the last write failed.</summary>
    private async Task EnterAsync()
    {
        await _gate.WaitAsync();
        try
        {
            await ReloadIfStaleAsync();
        }
        catch
        {
            _gate.Release();
            throw;
        }
    }

    private async Task ReloadIfStaleAsync()
    {
        if (!_stale)
        {
            return;
        }

        await LoadAsync();
        _cancels.Clear();
        _stale = false;
    }

    /// <inheritdoc />
    public async Task<RunState> CancelAsync(string reason, string? actor = null)
    {
        await EnterAsync();
        try
        {
            EnsureExists();
            if (Run.Status.IsTerminal())
            {
                throw new ConveyorConflictException($"run {Run.RunId} already ended {Run.Status}; only a Pending, Queued or Running run can be cancelled");
            }

            Run.CancelledBy = actor;

            await EndAndActAsync(RunStatus.Cancelled, string.IsNullOrWhiteSpace(reason) ? "cancelled" : reason);
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
            if (Run.Status is not (RunStatus.Failed or RunStatus.Cancelled or RunStatus.TimedOut))
            {
                throw new ConveyorConflictException($"run {Run.RunId} is {Run.Status}; only a Failed, Cancelled or TimedOut run can be retried");
            }

            Run.RetriedBy = actor;

            foreach (var step in Run.Steps.Where(s => s.Status != StepStatus.Succeeded))
            {
                SetStatus(step, StepStatus.Pending);
                step.NextAttemptAt = null;
                step.DeadlineAt = null;
                step.Output = null;
                step.BudgetStart = step.Attempts.Count;
            }

            // Steps went back to Pending: readiness is recomputed by a full pass, keeping what must be written.
            var retried = _dirty.ToList();
            Rebuild();
            _dirty.UnionWith(retried);

            Run.Committed = true;
            Run.FinishedAt = null;
            Run.Message = "";
            Run.RunAttempt++;
            using var activity = StartRunActivity("retry");
            _reminder = await this.RegisterOrUpdateReminder(KeepAliveReminder, options.Value.KeepAlivePeriod, options.Value.KeepAlivePeriod);
            LogRunRetried(logger, Run.RunId, Run.RunAttempt);
            await QueueOrBeginAsync();
            return Run;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <inheritdoc />
    public Task<RunState?> GetAsync() => Task.FromResult(_exists ? Run : null);

    /// <inheritdoc />
    public async Task<RunSummary?> GetSummaryAsync()
    {
        if (!_exists)
        {
            DeactivateOnIdle();
            return null;
        }

        await SyncIndexAsync();
        return Summary();
    }

    /// <inheritdoc />
    public Task<Dictionary<string, string>> GetDriverResultsAsync() =>
        Task.FromResult(_exists ? DriverResults() : []);

    /// <inheritdoc />
    public async Task ReceiveReminder(string reminderName, TickStatus status)
    {
        await EnterAsync();
        try
        {
            if (!_exists || Run.Status.IsTerminal())
            {
                if (_exists)
                {
                    await SyncIndexAsync();
                    if (!await ReleaseSlotAsync())
                    {
                        return;
                    }
                }

                await StopKeepAliveAsync();
                return;
            }

            if (!Run.Committed)
            {
                await CheckCommitAsync();
                return;
            }

            if (Run.Status == RunStatus.Queued)
            {
                // Covers a lost admission message and a crash between storing Queued and asking the queue.
                await AcquireAsync();
                return;
            }

            await WakeAsync();
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>The resource grain that prepared this run died before starting it: start or give up.</summary>
    private async Task CheckCommitAsync()
    {
        if (time.GetUtcNow() - Run.CreatedAt < CommitGrace)
        {
            return;
        }

        var key = Names.ResourceKey(Run.Plan.Namespace, Run.Plan.Resource.Type, Run.Plan.Resource.Name);
        var (resource, lastRun) = await grains.GetGrain<IResourceGrain>(key).GetAsync();
        if (resource is not null && lastRun == Run.RunId)
        {
            await StartCoreAsync();
            return;
        }

        EndRun(RunStatus.Cancelled, "the resource that started this run was never stored", time.GetUtcNow());
        await PersistAsync();
        await AfterTransitionAsync();
    }

    private async Task WakeGatedAsync()
    {
        await EnterAsync();
        try
        {
            await WakeAsync();
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Timer and reminder tick: applies every due time, then persists and acts on what changed.</summary>
    private async Task WakeAsync()
    {
        if (!Active)
        {
            if (_exists)
            {
                await SyncIndexAsync();
                await PublishEventsAsync();
            }

            return;
        }

        var now = time.GetUtcNow();
        RepublishAfterReconnect(now);
        var changed = false;
        if (Run.DeadlineAt is { } runDeadline && runDeadline <= now)
        {
            EndRun(RunStatus.TimedOut, $"run timed out after {Run.Plan.Pipeline.Timeout}", now);
            changed = true;
        }
        else
        {
            // Due entries that no longer match the step (it moved on) are dropped on the way.
            while (_due.TryPeek(out var step, out var due) && due <= now)
            {
                _due.Dequeue();
                if (step.Status.IsInFlight() && step.DeadlineAt == due)
                {
                    FailAttempt(step, $"attempt {step.Current!.Number} timed out after {Specs[step.Id].Timeout}", timedOut: true, now);
                    changed = true;
                }
                else if (step.Status == StepStatus.Retrying && step.NextAttemptAt == due)
                {
                    Dispatch(step, now);
                    changed = true;
                }
            }

            if (changed || _needsFullPass)
            {
                changed |= Advance(now);
            }
        }

        if (changed)
        {
            await PersistAsync();
        }

        await AfterTransitionAsync();
    }

    /// <summary>
    /// NATS reconnected since this activation last looked: a restarted server can lose the writes it acknowledged
    /// just before it stopped, so dispatches published within the de-duplication window go out again (JetStream drops
    /// the copies it still has). Older ones were stored long before; the step timeout covers anything else.
    /// </summary>
    private void RepublishAfterReconnect(DateTimeOffset now)
    {
        var epoch = dispatcher.ConnectionEpoch;
        if (epoch == _publishedEpoch)
        {
            return;
        }

        _publishedEpoch = epoch;
        foreach (var step in _inFlight)
        {
            if (step.Current is { Published: true, PublishedAt: { } at } attempt
                && now - at < JetStreamTopology.MessagesDuplicateWindow - TimeSpan.FromSeconds(15))
            {
                attempt.Published = false;
                _unpublished.Add(step);
                Touch(step);
            }
        }
    }

    /// <summary>Finds the step a result is for, or says why there is none.</summary>
    private (StepState? Step, ApplyOutcome Outcome) FindStep(DriverResultInput result)
    {
        StepState? step;
        if (result.StepId is not null)
        {
            step = StepsById.GetValueOrDefault(result.StepId);
            if (step is null || !string.Equals(Specs[step.Id].Driver, result.Driver, StringComparison.Ordinal))
            {
                return (null, ApplyOutcome.UnknownStep);
            }

            var current = step.Current;
            if (current is null || (result.Attempt is { } a && a != current.Number))
            {
                return (null, ApplyOutcome.Stale);
            }

            if (current.Success is not null)
            {
                return (null, ApplyOutcome.Duplicate);
            }

            return step.Status.IsInFlight() && !Run.Status.IsTerminal() ? (step, ApplyOutcome.Applied) : (null, ApplyOutcome.Stale);
        }

        // An original driver says only who it is. It takes its messages in stream order, one at a time (the original
        // runtime), so its oldest unanswered delivery — the lowest stream sequence — is the one it answers.
        step = null;
        foreach (var candidate in _inFlight)
        {
            if (string.Equals(Specs[candidate.Id].Driver, result.Driver, StringComparison.Ordinal)
                && (step is null || DeliveredEarlier(candidate, step)))
            {
                step = candidate;
            }
        }

        if (step is not null && !Run.Status.IsTerminal())
        {
            return (step, ApplyOutcome.Applied);
        }

        var known = Run.Steps.Exists(s => string.Equals(Specs[s.Id].Driver, result.Driver, StringComparison.Ordinal));
        return (null, known ? ApplyOutcome.Duplicate : ApplyOutcome.UnknownStep);
    }

    private bool DeliveredEarlier(StepState x, StepState y)
    {
        var (a, b) = (x.Current!, y.Current!);
        var sa = a.Published && a.Sequence > 0 ? a.Sequence : ulong.MaxValue;
        var sb = b.Published && b.Sequence > 0 ? b.Sequence : ulong.MaxValue;
        return sa != sb ? sa < sb : a.DispatchedAt != b.DispatchedAt ? a.DispatchedAt < b.DispatchedAt : _index[x] < _index[y];
    }

    /// <summary>Ends the current attempt as failed; schedules a retry while the step's budget lasts.</summary>
    private void FailAttempt(StepState step, string message, bool timedOut, DateTimeOffset now)
    {
        var attempt = step.Current!;
        var spec = Specs[step.Id];
        Touch(step);
        attempt.FinishedAt = now;
        attempt.Success = false;
        attempt.Message = message;
        attempt.TimedOut = timedOut;
        step.DeadlineAt = null;
        if (timedOut)
        {
            // The driver may still be working on it: tell it to stop.
            QueueCancel(step, attempt, message);
        }

        var policy = spec.Retry ?? Run.Plan.Pipeline.Retry;
        var used = step.Attempts.Count - step.BudgetStart;
        if (policy is not null && used < policy.MaxAttempts)
        {
            var next = now + Backoff(policy, used);
            step.NextAttemptAt = next;
            SetStatus(step, StepStatus.Retrying);
            _due.Enqueue(step, next);
            LogRetryScheduled(logger, Run.RunId, step.Id, attempt.Number, next);
            return;
        }

        SetStatus(step, timedOut ? StepStatus.TimedOut : StepStatus.Failed);
        if (!spec.AllowFailure && Run.Plan.Pipeline.FailurePolicy == FailurePolicy.FailFast)
        {
            CancelRemaining($"step {step.Id} {(timedOut ? "timed out" : "failed")}: {message}", now);
        }
    }

    /// <summary>Exponential backoff with jitter: initial × multiplier^(n−1), capped, ± jitter.</summary>
    private static TimeSpan Backoff(RetryPolicy policy, int attemptsUsed)
    {
        var delay = policy.InitialDelay.TotalMilliseconds * Math.Pow(policy.Multiplier, Math.Max(0, attemptsUsed - 1));
        delay = Math.Min(delay, policy.MaxDelay.TotalMilliseconds);
        delay *= 1 + (policy.Jitter * ((Random.Shared.NextDouble() * 2) - 1));
        return TimeSpan.FromMilliseconds(Math.Max(0, delay));
    }

    /// <summary>
    /// Moves the DAG forward after a transition: every step that settled releases or skips its dependents, a dependent
    /// whose last unmet dependency succeeded is dispatched, and the run finishes when no step can change any more.
    /// O(dependents of what settled); the first call after a load or a restart of steps makes one full pass instead.
    /// Returns whether anything changed.
    /// </summary>
    private bool Advance(DateTimeOffset now)
    {
        if (Run.Status != RunStatus.Running)
        {
            _settled.Clear();
            return false;
        }

        var changed = false;
        if (_needsFullPass)
        {
            changed = FullPass(now);
        }

        while (_settled.TryDequeue(out var settled))
        {
            if (!_dependents.TryGetValue(settled.Id, out var dependents))
            {
                continue;
            }

            var satisfied = Satisfies(settled);
            foreach (var dependent in dependents)
            {
                if (dependent.Status != StepStatus.Pending)
                {
                    continue;
                }

                changed = true;
                if (!satisfied)
                {
                    // Skipping settles it in turn, so the skip reaches the whole subgraph within this loop.
                    SetStatus(dependent, StepStatus.Skipped);
                }
                else
                {
                    Release(dependent, now);
                }
            }
        }

        if (_unsettled == 0)
        {
            Finish(now);
            changed = true;
        }

        return changed;
    }

    /// <summary>One more dependency of a pending step succeeded: dispatches it when that was the last one.</summary>
    private void Release(StepState step, DateTimeOffset now)
    {
        if (_unmet.TryGetValue(step, out var unmet))
        {
            unmet--;
        }
        else
        {
            // Not counted (cannot happen after a full pass): count what is still unmet now rather than guess.
            unmet = Specs[step.Id].DependsOn.Count(dep => StepById(dep) is var d && !(d.Status.IsTerminal() && Satisfies(d)));
        }

        if (unmet > 0)
        {
            _unmet[step] = unmet;
            return;
        }

        _unmet.Remove(step);
        Dispatch(step, now);
    }

    /// <summary>Whether a settled step lets its dependents run.</summary>
    private bool Satisfies(StepState step) =>
        step.Status == StepStatus.Succeeded || (step.Status is StepStatus.Failed or StepStatus.TimedOut && Specs[step.Id].AllowFailure);

    /// <summary>
    /// Looks at every pending step in topological order (a dependency is settled before its dependents are looked
    /// at, so a skip propagates in the same pass): dispatches the ready, skips the blocked, and counts what the rest
    /// still wait for. O(steps + edges); run when the incremental counts are not known yet.
    /// </summary>
    private bool FullPass(DateTimeOffset now)
    {
        _needsFullPass = false;
        _settled.Clear();
        _unmet.Clear();
        var changed = false;
        foreach (var step in TopologicalOrder())
        {
            if (step.Status != StepStatus.Pending)
            {
                continue;
            }

            var unmet = 0;
            var blocked = false;
            foreach (var dep in Specs[step.Id].DependsOn)
            {
                var d = StepById(dep);
                if (d.Status.IsTerminal() && Satisfies(d))
                {
                    continue;
                }

                unmet++;
                blocked |= d.Status.IsTerminal();
            }

            if (blocked)
            {
                SetStatus(step, StepStatus.Skipped);
                changed = true;
            }
            else if (unmet == 0)
            {
                Dispatch(step, now);
                changed = true;
            }
            else
            {
                _unmet[step] = unmet;
            }
        }

        // What settled during the pass was already accounted for by the pass itself.
        _settled.Clear();
        return changed;
    }

    /// <summary>Kahn's algorithm over the plan; steps keep their declaration order among equals.</summary>
    private List<StepState> TopologicalOrder()
    {
        var waiting = new Dictionary<string, int>(Run.Steps.Count, StringComparer.Ordinal);
        var queue = new Queue<StepState>();
        foreach (var step in Run.Steps)
        {
            var deps = Specs[step.Id].DependsOn.Count;
            waiting[step.Id] = deps;
            if (deps == 0)
            {
                queue.Enqueue(step);
            }
        }

        var order = new List<StepState>(Run.Steps.Count);
        while (queue.TryDequeue(out var step))
        {
            order.Add(step);
            foreach (var next in _dependents.GetValueOrDefault(step.Id) ?? [])
            {
                if (--CollectionsMarshal.GetValueRefOrNullRef(waiting, next.Id) == 0)
                {
                    queue.Enqueue(next);
                }
            }
        }

        if (order.Count != Run.Steps.Count)
        {
            // Validation rejects cycles; a plan stored before that rule would otherwise hang here.
            throw new InvalidOperationException($"run {Run.RunId}: the pipeline's steps form a cycle");
        }

        return order;
    }

    private void Dispatch(StepState step, DateTimeOffset now)
    {
        var deadline = now + Specs[step.Id].Timeout;
        step.NextAttemptAt = null;
        step.DeadlineAt = deadline;
        step.Attempts.Add(new AttemptState { Number = step.Attempts.Count + 1, DispatchedAt = now });
        SetStatus(step, StepStatus.Dispatched);
        _unpublished.Add(step);
        if (deadline is { } d)
        {
            _due.Enqueue(step, d);
        }
    }

    private void Finish(DateTimeOffset now)
    {
        var failed = Run.Steps.Find(s => s.Status is StepStatus.Failed or StepStatus.TimedOut && !Specs[s.Id].AllowFailure)
            ?? Run.Steps.Find(s => s.Status is StepStatus.Skipped or StepStatus.Cancelled);
        Run.Status = failed is null ? RunStatus.Succeeded : RunStatus.Failed;
        Run.FinishedAt = now;
        Run.DeadlineAt = null;
        if (failed is not null && string.IsNullOrEmpty(Run.Message))
        {
            Run.Message = $"step {failed.Id} {failed.Status.ToString().ToLowerInvariant()}: {failed.Current?.Message}";
        }
    }

    /// <summary>Fail-fast: nothing new starts, in-flight steps are cancelled; the run then finishes Failed.</summary>
    private void CancelRemaining(string reason, DateTimeOffset now)
    {
        Run.Message = reason;
        foreach (var step in Run.Steps)
        {
            StopStep(step, reason, now);
        }
    }

    /// <summary>Ends the run now (cancel, run timeout): every unfinished step is cancelled or skipped.</summary>
    private void EndRun(RunStatus status, string reason, DateTimeOffset now)
    {
        foreach (var step in Run.Steps)
        {
            StopStep(step, reason, now);
        }

        Run.Status = status;
        Run.Message = reason;
        Run.FinishedAt = now;
        Run.DeadlineAt = null;
        LogRunEnded(logger, Run.RunId, status, reason);
    }

    private void StopStep(StepState step, string reason, DateTimeOffset now)
    {
        if (step.Status is StepStatus.Pending or StepStatus.Retrying)
        {
            SetStatus(step, StepStatus.Skipped);
            step.NextAttemptAt = null;
        }
        else if (step.Status.IsInFlight())
        {
            SetStatus(step, StepStatus.Cancelled);
            step.DeadlineAt = null;
            var attempt = step.Current!;
            attempt.Message = reason;
            attempt.FinishedAt = now;
            QueueCancel(step, attempt, reason);
        }
    }

    private void QueueCancel(StepState step, AttemptState attempt, string reason) =>
        _cancels.Add(new CancelMessage
        {
            RunId = Run.RunId.ToString(),
            Step = step.Id,
            Attempt = attempt.Number,
            Driver = Specs[step.Id].Driver,
            Reason = reason,
        });

    /// <summary>Side effects of a persisted transition: index, cancel messages, dispatches, timers; the reminder goes when the run ends.</summary>
    private async Task AfterTransitionAsync()
    {
        // The index move, the CDEvents and the dispatches are independent effects of the same stored transition (each
        // is retried from state if lost), so they overlap instead of adding a Redis and a JetStream round trip before
        // every dispatch.
        var indexed = SyncIndexAsync();
        var events = PublishEventsAsync();
        await SendCancelsAsync();
        if (Run.Status.IsTerminal())
        {
            LogRunFinished(logger, Run.RunId, Run.Status);
            if (await ReleaseSlotAsync())
            {
                await Task.WhenAll(indexed, events, StopKeepAliveAsync());
            }
            else
            {
                // Keep the reminder: its next tick releases the slot again.
                _timer?.Dispose();
                _timer = null;
                await Task.WhenAll(indexed, events);
            }

            return;
        }

        await PublishPendingAsync();
        await Task.WhenAll(indexed, events);
        ArmTimer(null);
    }

    /// <summary>
    /// Publishes every in-flight attempt that JetStream has not confirmed yet (the outbox). The publishes of one
    /// transition go out together — a layer of a wide DAG costs about one round trip, not one per step.
    /// </summary>
    private async Task PublishPendingAsync()
    {
        _waitingForDriver = false;
        var pending = new List<(StepState Step, StepSpec Spec, AttemptState Attempt, string Subject, Task<DispatchResult> Publish, Activity? Span)>();
        var caller = Activity.Current;

        // Every message of a batch carries the same resource snapshot (with the driver results so far): build it once,
        // not once per step, which made dispatching a layer of n steps cost O(n²).
        string? payload = null;
        var unpublished = _unpublished.ToArray();
        if (unpublished.Length > 1)
        {
            // Declaration order, as a driver would expect among steps made ready together.
            Array.Sort(unpublished, (a, b) => _index[a].CompareTo(_index[b]));
        }

        foreach (var step in unpublished)
        {
            var attempt = step.Current;
            if (!step.Status.IsInFlight() || attempt is null || attempt.Published)
            {
                _unpublished.Remove(step);
                continue;
            }

            var spec = Specs[step.Id];
            var subject = Subjects.DriverResources(spec.Driver, Run.Plan.Resource.Type);
            var headers = new NatsHeaders
            {
                [Headers.RunId] = Run.RunId.ToString(),
                [Headers.StepId] = step.Id,
                [Headers.Attempt] = attempt.Number.ToString(CultureInfo.InvariantCulture),
            };
            var span = ConveyorTelemetry.Source.StartActivity(ConveyorTelemetry.DispatchActivity, ActivityKind.Producer, DispatchParent());
            if (span is not null)
            {
                span.SetTag("conveyor.run.id", Run.RunId.ToString());
                span.SetTag("conveyor.step", step.Id);
                span.SetTag("conveyor.attempt", attempt.Number);
                span.SetTag("conveyor.driver", spec.Driver);
                span.SetTag("messaging.system", "nats");
                span.SetTag("messaging.destination.name", subject);
                // The dispatches of one transition are siblings, not nested.
                Activity.Current = caller;
            }

            if ((span?.Id ?? Run.TraceParent) is { } traceParent)
            {
                headers[Headers.TraceParent] = traceParent;
            }

            var publish = dispatcher.DispatchAsync(
                subject,
                BuildMessage(step, spec, attempt, payload ??= ConveyorJson.SerializeResource(ResourceGrain.ToWire(Run.Plan.Resource, DriverResults()))),
                MessageIds.DedupKey(Run.RunId.ToString(), step.Id, attempt.Number),
                headers,
                requireConsumer: true,
                attemptTimeout: spec.Timeout);
            pending.Add((step, spec, attempt, subject, publish, span));
        }

        foreach (var (step, spec, attempt, subject, publish, span) in pending)
        {
            using var _ = span;
            try
            {
                var dispatched = await publish;
                if (dispatched.Outcome == DispatchOutcome.Published)
                {
                    // Confirmed in memory; persisted with the next transition. A crash before that re-publishes, and
                    // JetStream drops the copy by its Nats-Msg-Id (and reports the original's sequence).
                    attempt.Published = true;
                    attempt.Sequence = dispatched.Sequence;
                    attempt.PublishedAt = time.GetUtcNow();
                    _unpublished.Remove(step);
                    Touch(step);
                    metrics.Dispatched(spec.Driver, attempt.PublishedAt.Value - attempt.DispatchedAt);
                    LogDispatched(logger, Run.RunId, step.Id, attempt.Number, subject);
                }
                else
                {
                    _waitingForDriver = true;
                    span?.SetTag("conveyor.waiting_for_driver", true);
                    LogWaitingForDriver(logger, Run.RunId, step.Id, spec.Driver, subject);
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                _waitingForDriver = true;
                span?.SetStatus(ActivityStatusCode.Error, ex.Message);
                LogDispatchFailed(logger, ex, Run.RunId, step.Id, subject);
            }
        }
    }

    private async Task SendCancelsAsync()
    {
        foreach (var cancel in _cancels)
        {
            try
            {
                await dispatcher.SendCancelAsync(cancel);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // Best effort: the engine ignores the attempt's result whatever the driver does.
                LogCancelFailed(logger, ex, Run.RunId, cancel.Step);
            }
        }

        _cancels.Clear();
    }

    private DriverMessage BuildMessage(StepState step, StepSpec spec, AttemptState attempt, string payload)
    {
        Dictionary<string, JsonElement>? inputs = null;
        foreach (var dep in spec.DependsOn)
        {
            var d = StepById(dep);
            if (d.Status == StepStatus.Succeeded && d.Output is not null)
            {
                (inputs ??= new(StringComparer.Ordinal))[dep] = JsonSerializer.Deserialize<JsonElement>(d.Output);
            }
        }

        return new DriverMessage
        {
            // Root steps get "create" like the original's first step; every later step gets "process".
            Event = spec.DependsOn.Count == 0 ? EventNames.Create : EventNames.Process,
            Payload = payload,
            Id = MessageIds.ForDispatch(Run.RunId.ToString(), step.Id, attempt.Number),
            RunId = Run.RunId.ToString(),
            Step = step.Id,
            Attempt = attempt.Number,
            Params = MergeParams(spec.Params, Run.Plan.Params),
            Inputs = inputs,
            Variables = Run.Plan.Pipeline.Variables,
        };
    }

    /// <summary>A step's params with the run's params laid over them, key by key (the run's win).</summary>
    internal static JsonElement? MergeParams(string? stepParams, string? runParams)
    {
        if (runParams is null)
        {
            return stepParams is null ? null : JsonSerializer.Deserialize<JsonElement>(stepParams);
        }

        var merged = stepParams is not null && System.Text.Json.Nodes.JsonNode.Parse(stepParams) is System.Text.Json.Nodes.JsonObject o
            ? o
            : new System.Text.Json.Nodes.JsonObject();
        if (System.Text.Json.Nodes.JsonNode.Parse(runParams) is System.Text.Json.Nodes.JsonObject run)
        {
            foreach (var (key, value) in run)
            {
                merged[key] = value?.DeepClone();
            }
        }

        return JsonSerializer.Deserialize<JsonElement>(merged.ToJsonString());
    }

    /// <summary>The original's <c>driverresults.&lt;driver&gt;</c> entries, later results overriding earlier ones.</summary>
    private Dictionary<string, string> DriverResults()
    {
        var results = new Dictionary<string, string>(_latestResults.Count, StringComparer.Ordinal);
        foreach (var (driver, latest) in _latestResults)
        {
            results["driverresults." + driver] = latest.Json;
        }

        return results;
    }

    private RunSummary Summary() => new()
    {
        RunId = Run.RunId,
        Namespace = Run.Plan.Namespace,
        Pipeline = Run.Plan.Pipeline.Name,
        PipelineRevision = Run.Plan.Pipeline.Revision,
        ResourceType = Run.Plan.Resource.Type,
        ResourceName = Run.Plan.Resource.Name,
        Status = Run.Status,
        CreatedAt = Run.CreatedAt,
        FinishedAt = Run.FinishedAt,
        Message = Run.Message,
    };

    /// <summary>Files the run under its current status in the listing index, once per status change.</summary>
    private async Task SyncIndexAsync()
    {
        if (!index.IsAvailable || Run.IndexedStatus == Run.Status)
        {
            return;
        }

        try
        {
            await index.SetStatusAsync(Summary());
            Run.IndexedStatus = Run.Status;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Repaired on the next activation or reminder tick: IndexedStatus still differs from Status.
            LogIndexFailed(logger, ex, Run.RunId);
        }
    }

    /// <summary>Arms the single timer for the earliest due time in state, or for <paramref name="dueOverride"/>.</summary>
    private void ArmTimer(TimeSpan? dueOverride)
    {
        TimeSpan? due = dueOverride;
        if (due is null && Active)
        {
            var now = time.GetUtcNow();
            DateTimeOffset? next = Run.DeadlineAt;
            // The heap's head may be an entry its step has moved past; those are dropped until a live one is on top.
            while (_due.TryPeek(out var step, out var at))
            {
                if ((step.Status.IsInFlight() && step.DeadlineAt == at) || (step.Status == StepStatus.Retrying && step.NextAttemptAt == at))
                {
                    next = next is null || at < next ? at : next;
                    break;
                }

                _due.Dequeue();
            }

            if (_waitingForDriver)
            {
                var retry = now + dispatcher.Options.DriverWaitInterval;
                next = next is null || retry < next ? retry : next;
            }

            if (next is { } n)
            {
                due = n <= now ? TimeSpan.Zero : n - now;
            }
        }

        if (due is null)
        {
            _timer?.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            return;
        }

        if (_timer is null)
        {
            _timer = this.RegisterGrainTimer(
                static (grain, _) => grain.WakeGatedAsync(),
                this,
                new GrainTimerCreationOptions(due.Value, Timeout.InfiniteTimeSpan) { Interleave = false, KeepAlive = true });
        }
        else
        {
            _timer.Change(due.Value, Timeout.InfiniteTimeSpan);
        }
    }

    private async Task StopKeepAliveAsync()
    {
        _timer?.Dispose();
        _timer = null;
        // The handle from this activation's registration saves looking it up (a reminder-table read per run); if it
        // went stale (updated elsewhere since), the current one is looked up after all.
        if (_reminder is { } known)
        {
            _reminder = null;
            try
            {
                await this.UnregisterReminder(known);
                return;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogReminderStale(logger, ex, Run.RunId);
            }
        }

        var reminder = await this.GetReminder(KeepAliveReminder);
        if (reminder is not null)
        {
            await this.UnregisterReminder(reminder);
        }
    }

    private void EnsureExists()
    {
        if (!_exists)
        {
            DeactivateOnIdle();
            throw new ConveyorNotFoundException($"run {this.GetPrimaryKey()} not found");
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId} of pipeline {Pipeline} (revision {Revision}) started")]
    private static partial void LogRunStarted(ILogger logger, Guid runId, string pipeline, int revision);

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId} retried (run attempt {RunAttempt})")]
    private static partial void LogRunRetried(ILogger logger, Guid runId, int runAttempt);

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId} finished: {Status}")]
    private static partial void LogRunFinished(ILogger logger, Guid runId, RunStatus status);

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId} ended {Status}: {Reason}")]
    private static partial void LogRunEnded(ILogger logger, Guid runId, RunStatus status, string reason);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Run {RunId}: step {Step} attempt {Attempt} dispatched on {Subject}")]
    private static partial void LogDispatched(ILogger logger, Guid runId, string step, int attempt, string subject);

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId}: step {Step} attempt {Attempt} ended {Status}")]
    private static partial void LogStepFinished(ILogger logger, Guid runId, string step, int attempt, StepStatus status);

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId}: step {Step} attempt {Attempt} failed; next attempt at {NextAttemptAt}")]
    private static partial void LogRetryScheduled(ILogger logger, Guid runId, string step, int attempt, DateTimeOffset nextAttemptAt);

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId}: step {Step} waits for driver {Driver} (no consumer on {Subject})")]
    private static partial void LogWaitingForDriver(ILogger logger, Guid runId, string step, string driver, string subject);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Run {RunId}: dispatch of step {Step} on {Subject} failed; retrying")]
    private static partial void LogDispatchFailed(ILogger logger, Exception exception, Guid runId, string step, string subject);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Run {RunId}: cancel message for step {Step} could not be sent")]
    private static partial void LogCancelFailed(ILogger logger, Exception exception, Guid runId, string step);

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId} queued in {Queue} at position {Position}")]
    private static partial void LogQueued(ILogger logger, Guid runId, string queue, int position);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Run {RunId}: asking queue {Queue} for a slot failed; asked again by the keepalive")]
    private static partial void LogAdmissionFailed(ILogger logger, Exception exception, Guid runId, string queue);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Run {RunId}: releasing its slot in queue {Queue} failed; released again by the keepalive")]
    private static partial void LogReleaseFailed(ILogger logger, Exception exception, Guid runId, string queue);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Run {RunId}: its keepalive reminder changed since it was registered; unregistering the current one")]
    private static partial void LogReminderStale(ILogger logger, Exception exception, Guid runId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Run {RunId}: listing index update failed; repaired later")]
    private static partial void LogIndexFailed(ILogger logger, Exception exception, Guid runId);
}
