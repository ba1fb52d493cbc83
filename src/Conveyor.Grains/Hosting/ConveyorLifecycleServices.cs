using Conveyor.Grains;
using Conveyor.Grains.Nats;
using Conveyor.Grains.Runs;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Runtime;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>What keeps a long-running engine bounded: limits, retention and the archive, heartbeats, dead letters.</summary>
internal static partial class ConveyorLifecycleServices
{
    /// <summary>Registers the limits, retention (sweeper and index), the run archive, heartbeats and dead-lettering.</summary>
    public static IServiceCollection AddConveyorLifecycle(this IServiceCollection services)
    {
        services.AddOptions<ConveyorLimitsOptions>().BindConfiguration(ConveyorLimitsOptions.Section).ValidateDataAnnotations()
            .Validate(o => o.MinScheduleInterval >= TimeSpan.Zero, "Conveyor:Limits:MinScheduleInterval must not be negative")
            .ValidateOnStart();
        services.AddOptions<RunArchiveOptions>().BindConfiguration(RunArchiveOptions.Section)
            .Validate(o => o.MaxAge > TimeSpan.Zero && o.MaxBytes is -1 or > 0, "Conveyor:Archive:MaxAge must be positive and MaxBytes positive or -1")
            .ValidateOnStart();
        services.AddOptions<RunEngineOptions>()
            .Validate(
                o => o.DefaultAttemptTimeout >= TimeSpan.Zero && o.HeartbeatLease > TimeSpan.Zero && o.MaxAttemptDuration >= TimeSpan.Zero
                    && o.RetentionPeriod >= TimeSpan.Zero && o.NamespaceRetention.Values.All(v => v >= TimeSpan.Zero)
                    && o.RetentionSweepInterval > TimeSpan.Zero && o.RetentionConcurrency > 0,
                "Conveyor:Runs: DefaultAttemptTimeout, MaxAttemptDuration and retention periods must not be negative; HeartbeatLease, RetentionSweepInterval and RetentionConcurrency must be positive")
            .ValidateOnStart();
        services.TryAddSingleton<IRunArchive, JetStreamRunArchive>();
        services.TryAddSingleton<IRunRetentionIndex, NoRunRetentionIndex>();
        services.TryAddSingleton<DeadLetters>();
        services.TryAddSingleton<Conveyor.Grains.Resources.ResourceVersionStore>();
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>, HeartbeatListener>();
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>, MaxDeliveriesListener>();
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>, RetentionStarter>();
        return services;
    }

    /// <summary>Makes sure the retention sweeper runs once the silo is active (each silo asks; the grain is one).</summary>
    private sealed partial class RetentionStarter(IGrainFactory grains, IRunRetentionIndex index, ILogger<RetentionStarter> logger) : ILifecycleParticipant<ISiloLifecycle>
    {
        public void Participate(ISiloLifecycle lifecycle) =>
            lifecycle.Subscribe(nameof(RetentionStarter), ServiceLifecycleStage.Active, async _ =>
            {
                if (!index.IsAvailable)
                {
                    return;
                }

                try
                {
                    await grains.GetGrain<IRetentionSweeperGrain>(IRetentionSweeperGrain.Key).StartAsync().ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // Another silo's start, or this silo's next start, registers it; the silo itself is fine.
                    LogStartFailed(logger, ex);
                }
            });

        [LoggerMessage(Level = LogLevel.Warning, Message = "The retention sweeper could not be started from this silo")]
        private static partial void LogStartFailed(ILogger logger, Exception exception);
    }
}
