using System.Diagnostics.Metrics;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Logs;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Conveyor.Grains.Runs;

/// <summary>Deletes expired runs. One per service (key <see cref="Key"/>); its reminder brings it back after a silo dies.</summary>
[Alias("conveyor.IRetentionSweeperGrain")]
internal interface IRetentionSweeperGrain : IGrainWithStringKey
{
    /// <summary>The one sweeper's key.</summary>
    public const string Key = "runs";

    /// <summary>Makes sure the sweeper runs (idempotent; every silo calls it when it starts).</summary>
    Task StartAsync();

    /// <summary>Deletes the runs due now; returns how many were deleted.</summary>
    Task<int> SweepAsync();
}

/// <summary>
/// Every <see cref="RunEngineOptions.RetentionSweepInterval"/>, takes the runs due for deletion from the retention index
/// (the longest due first, in batches) and has each run grain delete itself — archived first, then its logs, index
/// entries, keepalive and record. The cost per deleted run is a few Redis and JetStream operations, never a scan of the
/// runs that stay. A run whose deletion fails is tried again one interval later; one that started again meanwhile is
/// left alone (it files itself again when it ends).
/// </summary>
internal sealed partial class RetentionSweeperGrain(
    IRunRetentionIndex index,
    IRunIndex runs,
    ILogStore logs,
    IGrainFactory grains,
    IOptions<RunEngineOptions> options,
    TimeProvider time,
    ILogger<RetentionSweeperGrain> logger) : Grain, IRetentionSweeperGrain, IRemindable
{
    private const int BatchSize = 100;
    private const int MaxPerSweep = 10_000;
    private static readonly Meter Meter = new("Conveyor.Retention");
    private static readonly Counter<long> DeletedCounter = Meter.CreateCounter<long>("conveyor.runs.deleted", description: "Runs deleted by retention");
    private static readonly Counter<long> FailedCounter = Meter.CreateCounter<long>("conveyor.runs.delete_failed", description: "Run deletions by retention that failed and are tried again");
    private readonly RunEngineOptions _options = options.Value;
    private IGrainTimer? _timer;

    /// <inheritdoc />
    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        if (index.IsAvailable)
        {
            _timer = this.RegisterGrainTimer(
                static (grain, _) => grain.TickAsync(),
                this,
                new GrainTimerCreationOptions(_options.RetentionSweepInterval, _options.RetentionSweepInterval) { Interleave = false, KeepAlive = true });
        }

        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public async Task StartAsync()
    {
        if (!index.IsAvailable)
        {
            return;
        }

        // The reminder only brings the activation (and its timer) back after the silo holding it died.
        var period = _options.RetentionSweepInterval < TimeSpan.FromMinutes(1) ? TimeSpan.FromMinutes(1) : _options.RetentionSweepInterval;
        await this.RegisterOrUpdateReminder("sweep", period, period);
    }

    /// <inheritdoc />
    public Task ReceiveReminder(string reminderName, TickStatus status) => Task.CompletedTask;

    private async Task TickAsync()
    {
        try
        {
            await SweepAsync();
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LogSweepFailed(logger, ex);
        }
    }

    /// <inheritdoc />
    public async Task<int> SweepAsync()
    {
        if (!index.IsAvailable)
        {
            return 0;
        }

        var deleted = 0;
        var seen = 0;
        while (seen < MaxPerSweep)
        {
            var now = time.GetUtcNow();
            var due = await index.DueAsync(now, BatchSize);
            if (due.Count == 0)
            {
                break;
            }

            seen += due.Count;
            using var slots = new SemaphoreSlim(Math.Max(1, _options.RetentionConcurrency));
            var results = await Task.WhenAll(due.Select(async run =>
            {
                await slots.WaitAsync();
                try
                {
                    return await DeleteAsync(run, now);
                }
                finally
                {
                    slots.Release();
                }
            }));
            deleted += results.Count(r => r);
            if (due.Count < BatchSize)
            {
                break;
            }
        }

        if (deleted > 0)
        {
            LogSwept(logger, deleted);
        }

        return deleted;
    }

    private async Task<bool> DeleteAsync(ExpiredRun run, DateTimeOffset now)
    {
        try
        {
            if (!await grains.GetRunGrain(run.RunId).DeleteAsync())
            {
                // The record is gone (a deletion cut short after it): what is left of the run goes by its name.
                await logs.PurgeAsync(run.RunId.ToString());
                await runs.RemoveAsync(run.Namespace, run.Pipeline, run.RunId);
                await index.ForgetAsync(run.Namespace, run.Pipeline, run.RunId);
            }

            DeletedCounter.Add(1);
            return true;
        }
        catch (ConveyorConflictException)
        {
            // Started again since it expired: it files itself again when it ends.
            await index.ForgetAsync(run.Namespace, run.Pipeline, run.RunId);
            return false;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            FailedCounter.Add(1);
            LogDeleteFailed(logger, ex, run.RunId, _options.RetentionSweepInterval);
            await index.PostponeAsync(run, now + _options.RetentionSweepInterval);
            return false;
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Retention deleted {Count} expired runs")]
    private static partial void LogSwept(ILogger logger, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Retention could not delete run {RunId}; trying again in {Delay}")]
    private static partial void LogDeleteFailed(ILogger logger, Exception exception, Guid runId, TimeSpan delay);

    [LoggerMessage(Level = LogLevel.Warning, Message = "A retention sweep failed; the next one tries again")]
    private static partial void LogSweepFailed(ILogger logger, Exception exception);
}
