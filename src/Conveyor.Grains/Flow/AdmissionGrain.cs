using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Runs;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Conveyor.Grains.Flow;

/// <summary>Stored state of a queue.</summary>
[GenerateSerializer]
[Alias("conveyor.AdmissionState")]
internal sealed class AdmissionState
{
    /// <summary>Runs holding a slot.</summary>
    [Id(0)] public Dictionary<Guid, QueuedRun> Active { get; set; } = [];

    /// <summary>Waiting runs, kept in admission order: priority descending, then sequence ascending.</summary>
    [Id(1)] public List<QueuedRun> Queued { get; set; } = [];

    /// <summary>Next arrival sequence number.</summary>
    [Id(2)] public long NextSequence { get; set; }

    /// <summary>The namespace limit last reported by a run (configuration), or null.</summary>
    [Id(3)] public int? NamespaceLimit { get; set; }

    /// <summary>Runs told to cancel by a newer run of their group, with that newer run; dropped when they release.</summary>
    [Id(4)] public Dictionary<Guid, Guid> Superseded { get; set; } = [];
}

/// <summary>
/// One queue of runs: the set of runs holding a slot and a persisted priority queue (FIFO within a priority). Every
/// change is stored before the runs it concerns are told (admit, supersede), and those calls are one-way and
/// idempotent on the run's side, so a lost one is simply repeated: by the run's own keepalive (it asks again) or by
/// this grain's verification reminder.
/// </summary>
internal sealed partial class AdmissionGrain(
    [PersistentState("admission", ConveyorStorage.Name)] IPersistentState<AdmissionState> state,
    IGrainFactory grains,
    IOptions<FlowControlOptions> options,
    TimeProvider time,
    ILogger<AdmissionGrain> logger) : Grain, IAdmissionGrain, IRemindable
{
    private const string VerifyReminder = "verify";
    private bool? _reminderRegistered;

    private AdmissionState Queue => state.State;

    private string Key => this.GetPrimaryKeyString();

    /// <inheritdoc />
    public async Task<AdmissionTicket> AcquireAsync(AdmissionRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (Queue.Active.ContainsKey(request.RunId))
        {
            return new AdmissionTicket { Admitted = true };
        }

        if (Queue.Superseded.TryGetValue(request.RunId, out var by))
        {
            return new AdmissionTicket { Superseded = true, SupersededBy = by };
        }

        var position = PositionOf(request.RunId);
        if (position is { } p)
        {
            return new AdmissionTicket { Position = p };
        }

        Queue.NamespaceLimit = request.NamespaceLimit;
        var entry = new QueuedRun
        {
            RunId = request.RunId,
            Pipeline = request.Pipeline,
            Priority = request.Priority,
            Group = request.Group,
            Sequence = Queue.NextSequence++,
            QueuedAt = time.GetUtcNow(),
            PipelineLimit = request.PipelineLimit,
            CancelInProgress = request.CancelInProgress,
        };

        var supersede = new List<Guid>();
        if (request.Group is not null && request.CancelInProgress)
        {
            // Every older run of the group goes: queued ones leave the queue now, active ones keep their slot until
            // their cancellation releases it, so the group never has two runs active at once.
            foreach (var older in Queue.Queued.Where(q => SameGroup(q, entry)).ToList())
            {
                Queue.Queued.Remove(older);
                supersede.Add(older.RunId);
            }

            supersede.AddRange(Queue.Active.Values.Where(a => SameGroup(a, entry)).Select(a => a.RunId));
            foreach (var id in supersede)
            {
                Queue.Superseded[id] = entry.RunId;
            }
        }

        Insert(entry);
        var admitted = AdmitWhatFits();
        await state.WriteStateAsync();
        await EnsureReminderAsync();

        foreach (var id in supersede)
        {
            LogSuperseded(logger, id, entry.RunId, Key);
            _ = grains.GetRunGrain(id).SupersedeAsync(entry.RunId);
        }

        NotifyAdmitted(admitted.Where(id => id != entry.RunId));
        return admitted.Contains(entry.RunId)
            ? new AdmissionTicket { Admitted = true }
            : new AdmissionTicket { Position = PositionOf(entry.RunId) ?? 0 };
    }

    /// <inheritdoc />
    public async Task ReleaseAsync(Guid runId)
    {
        var removed = Queue.Active.Remove(runId) | Queue.Queued.RemoveAll(q => q.RunId == runId) > 0 | Queue.Superseded.Remove(runId);
        if (!removed)
        {
            return;
        }

        var admitted = AdmitWhatFits();
        await state.WriteStateAsync();
        NotifyAdmitted(admitted);
        await StopReminderWhenIdleAsync();
    }

    /// <inheritdoc />
    public Task<int?> GetPositionAsync(Guid runId) => Task.FromResult(PositionOf(runId));

    /// <inheritdoc />
    public Task<AdmissionSnapshot> GetSnapshotAsync() => Task.FromResult(new AdmissionSnapshot
    {
        Active = Queue.Active.Values.OrderBy(a => a.Sequence).ToList(),
        Queued = [.. Queue.Queued],
        NamespaceLimit = Queue.NamespaceLimit,
    });

    /// <inheritdoc />
    public async Task VerifyAsync()
    {
        var changed = false;
        var readmit = new List<Guid>();
        var recancel = new List<(Guid Run, Guid By)>();
        foreach (var entry in Queue.Active.Values.Concat(Queue.Queued).ToList())
        {
            RunState? run;
            try
            {
                run = await grains.GetRunGrain(entry.RunId).GetAsync();
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogVerifyFailed(logger, ex, entry.RunId, Key);
                continue;
            }

            if (run is null || run.Status.IsTerminal())
            {
                // Ended (or never stored) without releasing: the slot would otherwise be held forever.
                LogSlotReclaimed(logger, entry.RunId, Key);
                Queue.Active.Remove(entry.RunId);
                Queue.Queued.Remove(entry);
                Queue.Superseded.Remove(entry.RunId);
                changed = true;
            }
            else if (Queue.Superseded.TryGetValue(entry.RunId, out var by))
            {
                recancel.Add((entry.RunId, by));
            }
            else if (run.Status == Contracts.RunStatus.Queued && Queue.Active.ContainsKey(entry.RunId))
            {
                readmit.Add(entry.RunId);
            }
        }

        var admitted = AdmitWhatFits();
        if (changed || admitted.Count > 0)
        {
            await state.WriteStateAsync();
        }

        NotifyAdmitted(readmit.Concat(admitted));
        foreach (var (run, by) in recancel)
        {
            _ = grains.GetRunGrain(run).SupersedeAsync(by);
        }

        await StopReminderWhenIdleAsync();
    }

    /// <inheritdoc />
    public Task ReceiveReminder(string reminderName, TickStatus status) => VerifyAsync();

    private static bool SameGroup(QueuedRun a, QueuedRun b) =>
        a.Group is not null && a.Group == b.Group && a.Pipeline == b.Pipeline && a.RunId != b.RunId;

    private int? PositionOf(Guid runId)
    {
        var i = Queue.Queued.FindIndex(q => q.RunId == runId);
        return i < 0 ? null : i + 1;
    }

    private void Insert(QueuedRun entry)
    {
        // Priority descending, then arrival: the new entry goes after every entry of its priority or higher.
        var i = Queue.Queued.FindIndex(q => q.Priority < entry.Priority);
        Queue.Queued.Insert(i < 0 ? Queue.Queued.Count : i, entry);
    }

    /// <summary>
    /// Moves queued runs to the active set, in queue order, while the namespace limit allows. A run whose pipeline is
    /// full or whose group is busy is passed over — it keeps its place — so a run of another pipeline or group behind
    /// it can start.
    /// </summary>
    private List<Guid> AdmitWhatFits()
    {
        var admitted = new List<Guid>();
        if (Queue.Queued.Count == 0)
        {
            return admitted;
        }

        var perPipeline = Queue.Active.Values.GroupBy(a => a.Pipeline, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        var busyGroups = Queue.Active.Values.Where(a => a.Group is not null).Select(a => (a.Pipeline, a.Group!)).ToHashSet();
        for (var i = 0; i < Queue.Queued.Count;)
        {
            if (Queue.NamespaceLimit is { } nsLimit && Queue.Active.Count >= nsLimit)
            {
                break;
            }

            var entry = Queue.Queued[i];
            var running = perPipeline.GetValueOrDefault(entry.Pipeline);
            if ((entry.PipelineLimit is { } limit && running >= limit) || (entry.Group is not null && busyGroups.Contains((entry.Pipeline, entry.Group))))
            {
                i++;
                continue;
            }

            Queue.Queued.RemoveAt(i);
            Queue.Active[entry.RunId] = entry;
            perPipeline[entry.Pipeline] = running + 1;
            if (entry.Group is not null)
            {
                busyGroups.Add((entry.Pipeline, entry.Group));
            }

            admitted.Add(entry.RunId);
        }

        return admitted;
    }

    private void NotifyAdmitted(IEnumerable<Guid> runs)
    {
        foreach (var id in runs)
        {
            LogAdmitted(logger, id, Key);
            _ = grains.GetRunGrain(id).AdmitAsync();
        }
    }

    private async Task EnsureReminderAsync()
    {
        _reminderRegistered ??= await this.GetReminder(VerifyReminder) is not null;
        if (_reminderRegistered == true)
        {
            return;
        }

        await this.RegisterOrUpdateReminder(VerifyReminder, options.Value.VerifyPeriod, options.Value.VerifyPeriod);
        _reminderRegistered = true;
    }

    private async Task StopReminderWhenIdleAsync()
    {
        if (Queue.Active.Count > 0 || Queue.Queued.Count > 0)
        {
            return;
        }

        var reminder = await this.GetReminder(VerifyReminder);
        if (reminder is not null)
        {
            await this.UnregisterReminder(reminder);
        }

        _reminderRegistered = false;
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Run {RunId} admitted by queue {Queue}")]
    private static partial void LogAdmitted(ILogger logger, Guid runId, string queue);

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId} superseded by run {NewerRunId} in queue {Queue} (cancel-in-progress)")]
    private static partial void LogSuperseded(ILogger logger, Guid runId, Guid newerRunId, string queue);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Queue {Queue}: run {RunId} ended without releasing its slot; slot reclaimed")]
    private static partial void LogSlotReclaimed(ILogger logger, Guid runId, string queue);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Queue {Queue}: could not check run {RunId}; checked again on the next tick")]
    private static partial void LogVerifyFailed(ILogger logger, Exception exception, Guid runId, string queue);
}
