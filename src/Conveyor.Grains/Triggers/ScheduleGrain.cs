using System.Globalization;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Runs;
using Conveyor.Grains.Security;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Conveyor.Grains.Triggers;

/// <summary>The cron schedules of one pipeline. Key: <see cref="Names.PipelineKey"/>.</summary>
[Alias("conveyor.IScheduleGrain")]
internal interface IScheduleGrain : IGrainWithStringKey
{
    /// <summary>Takes the pipeline as just stored (null: deleted) and arms or disarms its schedules.</summary>
    Task SyncAsync(PipelineSpec? pipeline);

    /// <summary>The last occurrence fired (or passed over) per schedule name.</summary>
    [Orleans.Concurrency.ReadOnly]
    [Orleans.Concurrency.AlwaysInterleave]
    Task<Dictionary<string, DateTimeOffset>> GetLastFiredAsync();
}

/// <summary>Stored state of a pipeline's schedules.</summary>
[GenerateSerializer]
[Alias("conveyor.ScheduleState")]
internal sealed class ScheduleState
{
    /// <summary>The pipeline as last stored, when it has schedules: its snapshot is what scheduled runs execute.</summary>
    [Id(0)] public PipelineSpec? Pipeline { get; set; }

    /// <summary>Per schedule name, the last occurrence that was fired or passed over.</summary>
    [Id(1)] public Dictionary<string, DateTimeOffset> LastFired { get; set; } = new(StringComparer.Ordinal);
}

/// <summary>
/// Fires a pipeline's cron schedules. One activation in the cluster per pipeline, a timer for the next occurrence and
/// a reminder that brings the grain back on another silo after a crash. Each occurrence is fired as a run whose id is
/// derived from (namespace, pipeline, schedule, occurrence), and the occurrence is stored as fired only after the run
/// exists — so a crash, a retry or a second activation during a membership change can repeat the call but never start
/// a second run for one tick.
/// </summary>
internal sealed partial class ScheduleGrain(
    [PersistentState("schedule", ConveyorStorage.Name)] IPersistentState<ScheduleState> state,
    IGrainFactory grains,
    RunLauncher launcher,
    IOptions<ScheduleOptions> options,
    TimeProvider time,
    ILogger<ScheduleGrain> logger) : Grain, IScheduleGrain, IRemindable
{
    private const string WakeReminder = "schedules";
    private static readonly TimeSpan RetryDelay = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan MaxTimerDue = TimeSpan.FromHours(1);
    private IGrainTimer? _timer;

    private string Namespace => Names.SplitKey(this.GetPrimaryKeyString())[0];

    /// <inheritdoc />
    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        if (state.State.Pipeline is not null)
        {
            Arm(TimeSpan.Zero);
        }

        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public async Task SyncAsync(PipelineSpec? pipeline)
    {
        var schedules = pipeline?.Schedules ?? [];
        var now = time.GetUtcNow();
        state.State.Pipeline = schedules.Count > 0 ? pipeline : null;
        foreach (var schedule in schedules)
        {
            // A new schedule starts counting now: it never fires for occurrences before it existed.
            state.State.LastFired.TryAdd(schedule.Name, now);
        }

        foreach (var name in state.State.LastFired.Keys.Where(n => !schedules.Exists(s => s.Name == n)).ToList())
        {
            state.State.LastFired.Remove(name);
        }

        await state.WriteStateAsync();
        if (state.State.Pipeline is null)
        {
            _timer?.Dispose();
            _timer = null;
            var reminder = await this.GetReminder(WakeReminder);
            if (reminder is not null)
            {
                await this.UnregisterReminder(reminder);
            }

            return;
        }

        await this.RegisterOrUpdateReminder(WakeReminder, options.Value.WakePeriod, options.Value.WakePeriod);
        Arm(NextDue(now));
    }

    /// <inheritdoc />
    public Task<Dictionary<string, DateTimeOffset>> GetLastFiredAsync() => Task.FromResult(new Dictionary<string, DateTimeOffset>(state.State.LastFired, StringComparer.Ordinal));

    /// <inheritdoc />
    public Task ReceiveReminder(string reminderName, TickStatus status) => TickAsync();

    /// <summary>Fires every schedule with a due occurrence, stores what was fired, and arms the timer for the next one.</summary>
    private async Task TickAsync()
    {
        var pipeline = await CurrentPipelineAsync();
        if (pipeline is null)
        {
            return;
        }

        var now = time.GetUtcNow();
        var changed = false;
        var failed = false;
        foreach (var schedule in pipeline.Schedules)
        {
            if (!Schedules.TryParse(schedule.Cron, out var cron, out _) || !Schedules.TryFindZone(schedule.TimeZone, out var zone))
            {
                continue;
            }

            var last = state.State.LastFired.GetValueOrDefault(schedule.Name, now);
            var tick = Schedules.Due(cron!, zone, last, now, options.Value.MisfireGrace, schedule.MissedFire);
            if (tick.Latest is not { } latest)
            {
                continue;
            }

            if (tick.LatestMissed is { } missed)
            {
                if (schedule.MissedFire == MissedFirePolicy.FireOnce)
                {
                    LogMissed(logger, pipeline.Name, schedule.Name, missed);
                }
                else
                {
                    LogSkipped(logger, pipeline.Name, schedule.Name, missed);
                }
            }

            // Stored as fired: everything up to the first failure. The rest fires on the next tick, under the same run ids.
            DateTimeOffset? through = latest;
            foreach (var occurrence in tick.Fire)
            {
                try
                {
                    await FireAsync(pipeline, schedule, occurrence);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    LogFireFailed(logger, ex, pipeline.Name, schedule.Name, occurrence);
                    failed = true;
                    through = PreviousOf(tick.Fire, occurrence);
                    break;
                }
            }

            if (through is { } fired && fired > last)
            {
                state.State.LastFired[schedule.Name] = fired;
                changed = true;
            }
        }

        if (changed)
        {
            await state.WriteStateAsync();
        }

        Arm(failed ? RetryDelay : NextDue(time.GetUtcNow()));
    }

    /// <summary>
    /// The pipeline to fire, checked against what is stored now: its schedules follow the stored pipeline even when a
    /// sync was lost (a pipeline write or delete whose sync call failed), and stop for a deleted pipeline or namespace.
    /// Null when nothing is to fire (the schedules are then disarmed).
    /// </summary>
    private async Task<PipelineSpec?> CurrentPipelineAsync()
    {
        if (state.State.Pipeline is not { } copy)
        {
            return null;
        }

        var current = await grains.IsNamespaceActiveAsync(Namespace)
            ? await grains.GetGrain<IPipelineGrain>(this.GetPrimaryKeyString()).GetAsync()
            : null;
        if (current is null || current.Revision != copy.Revision)
        {
            if (current is null)
            {
                LogDisarmed(logger, copy.Name);
            }

            await SyncAsync(current);
        }

        return state.State.Pipeline;
    }

    /// <summary>The occurrence fired just before <paramref name="occurrence"/> in this tick, or null when it was the first.</summary>
    private static DateTimeOffset? PreviousOf(IReadOnlyList<DateTimeOffset> fire, DateTimeOffset occurrence)
    {
        DateTimeOffset? previous = null;
        foreach (var o in fire)
        {
            if (o >= occurrence)
            {
                break;
            }

            previous = o;
        }

        return previous;
    }

    private async Task FireAsync(PipelineSpec pipeline, ScheduleSpec schedule, DateTimeOffset occurrence)
    {
        var ns = Namespace;
        var (resource, _) = await grains.GetGrain<IResourceGrain>(Names.ResourceKey(ns, pipeline.ResourceType, schedule.Resource)).GetAsync();
        if (resource is null)
        {
            LogNoResource(logger, pipeline.Name, schedule.Name, schedule.Resource);
            return;
        }

        var at = occurrence.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
        var (runId, result) = await launcher.StartAsync(new RunRequest(ns, pipeline, resource, RunTriggers.Schedule(schedule.Name))
        {
            Priority = schedule.Priority,
            TriggerId = at,
        });
        LogFired(logger, pipeline.Name, schedule.Name, at, runId, result.Created);
    }

    /// <summary>Time until the earliest next occurrence of any schedule (capped; the tick re-arms).</summary>
    private TimeSpan NextDue(DateTimeOffset now)
    {
        DateTimeOffset? next = null;
        foreach (var schedule in state.State.Pipeline?.Schedules ?? [])
        {
            if (Schedules.TryParse(schedule.Cron, out var cron, out _) && Schedules.TryFindZone(schedule.TimeZone, out var zone)
                && Schedules.Next(cron!, zone, state.State.LastFired.GetValueOrDefault(schedule.Name, now)) is { } n
                && (next is null || n < next))
            {
                next = n;
            }
        }

        if (next is not { } due)
        {
            return MaxTimerDue;
        }

        var wait = due - now;
        return wait <= TimeSpan.Zero ? TimeSpan.Zero : wait < MaxTimerDue ? wait : MaxTimerDue;
    }

    private void Arm(TimeSpan due)
    {
        if (_timer is null)
        {
            _timer = this.RegisterGrainTimer(
                static (grain, _) => grain.TickAsync(),
                this,
                new GrainTimerCreationOptions(due, Timeout.InfiniteTimeSpan) { Interleave = false, KeepAlive = true });
        }
        else
        {
            _timer.Change(due, Timeout.InfiniteTimeSpan);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Pipeline {Pipeline}: schedule {Schedule} fired for {Occurrence} as run {RunId} (new: {Created})")]
    private static partial void LogFired(ILogger logger, string pipeline, string schedule, string occurrence, Guid runId, bool created);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Pipeline {Pipeline}: schedule {Schedule} fires once, late, for missed occurrence {Occurrence} (older missed ones are dropped)")]
    private static partial void LogMissed(ILogger logger, string pipeline, string schedule, DateTimeOffset occurrence);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Pipeline {Pipeline}: schedule {Schedule} skipped missed occurrences up to {Occurrence}")]
    private static partial void LogSkipped(ILogger logger, string pipeline, string schedule, DateTimeOffset occurrence);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Pipeline {Pipeline}: schedule {Schedule} found no resource {Resource}; occurrence passed over")]
    private static partial void LogNoResource(ILogger logger, string pipeline, string schedule, string resource);

    [LoggerMessage(Level = LogLevel.Information, Message = "Pipeline {Pipeline}: its pipeline or namespace is gone; its schedules are disarmed")]
    private static partial void LogDisarmed(ILogger logger, string pipeline);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Pipeline {Pipeline}: schedule {Schedule} could not fire {Occurrence}; retrying")]
    private static partial void LogFireFailed(ILogger logger, Exception exception, string pipeline, string schedule, DateTimeOffset occurrence);
}
