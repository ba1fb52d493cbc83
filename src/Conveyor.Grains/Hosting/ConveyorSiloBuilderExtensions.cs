using System.Diagnostics;
using Conveyor.Grains.Catalog;
using Conveyor.Grains;
using Conveyor.Grains.Events;
using Conveyor.Grains.Flow;
using Conveyor.Grains.Logs;
using Conveyor.Grains.Nats;
using Conveyor.Grains.Resilience;
using Conveyor.Grains.Runs;
using Conveyor.Grains.Telemetry;
using Conveyor.Grains.Triggers;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using NATS.Client.Core;
using NATS.Client.JetStream;
using Orleans.Configuration;
using Orleans.Serialization;
using Orleans.Storage;
using StackExchange.Redis;

// Extension classes live in Microsoft.Extensions.Hosting for discoverability, as Orleans' own do.
namespace Microsoft.Extensions.Hosting;

/// <summary>Adds Conveyor's engine to an Orleans silo.</summary>
public static class ConveyorSiloBuilderExtensions
{
    /// <summary>
    /// Registers Conveyor's grains' services: the NATS connection (from <c>Conveyor:Nats</c>), JetStream stream
    /// setup, the driver dispatcher, the shared result consumer, the log ingestor and the default <c>ILogStore</c>. Idempotent. Storage and clustering are the host's
    /// choice (see <see cref="UseConveyorRedisStorage"/>).
    /// </summary>
    public static ISiloBuilder AddConveyorGrains(this ISiloBuilder builder, Action<ConveyorNatsOptions>? configureNats = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        if (configureNats is not null)
        {
            services.Configure(configureNats);
        }

        if (services.Any(d => d.ServiceType == typeof(ConveyorGrainsMarker)))
        {
            return builder;
        }

        services.AddSingleton<ConveyorGrainsMarker>();
        services.AddOptions<ConveyorNatsOptions>().BindConfiguration(ConveyorNatsOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<INatsConnection>(sp =>
            new NatsConnection(NatsConnectionFactory.CreateOpts(sp.GetRequiredService<IOptions<ConveyorNatsOptions>>().Value, "conveyor-engine")));
        services.AddOptions<TransientFaultOptions>().BindConfiguration(TransientFaultOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.TryAddSingleton(sp => new TransientFaults(
            sp.GetRequiredService<ILogger<TransientFaults>>(), sp.GetRequiredService<IOptions<TransientFaultOptions>>().Value));
        services.AddOptions<Conveyor.Grains.Security.ConveyorSecretsOptions>().BindConfiguration(Conveyor.Grains.Security.ConveyorSecretsOptions.Section)
            .ValidateDataAnnotations().ValidateOnStart();
        services.TryAddSingleton<Conveyor.Grains.Security.SecretProtector>();
        services.TryAddSingleton<DriverDispatcher>();
        services.TryAddSingleton<RunServices>();
        services.TryAddSingleton<RunLauncher>();
        services.TryAddSingleton<IRunIndex, NoRunIndex>();
        services.TryAddSingleton<IObjectCatalog, NoObjectCatalog>();
        // Runs live in the host's grain storage provider unless a store of their own is registered (Redis is).
        services.TryAddSingleton<IRunStore>(sp => new GrainStorageRunStore(sp.GetRequiredKeyedService<IGrainStorage>(ConveyorStorage.Name)));
        services.AddOptions<RunEngineOptions>().BindConfiguration(RunEngineOptions.Section)
            .Validate(o => o.KeepAlivePeriod > TimeSpan.Zero, "Conveyor:Runs:KeepAlivePeriod must be positive").ValidateOnStart();
        services.AddOptions<FlowControlOptions>().BindConfiguration(FlowControlOptions.Section)
            .Validate(o => o.VerifyPeriod > TimeSpan.Zero, "Conveyor:FlowControl:VerifyPeriod must be positive")
            .Validate(o => o.DefaultNamespaceLimit is null or > 0 && o.NamespaceLimits.Values.All(v => v > 0), "Conveyor:FlowControl namespace limits must be positive")
            .ValidateOnStart();
        // Orleans refuses reminder periods under its minimum (1 minute by default); lower it when runs or queues ask for less.
        services.AddOptions<ScheduleOptions>().BindConfiguration(ScheduleOptions.Section)
            .Validate(o => o.WakePeriod > TimeSpan.Zero && o.MisfireGrace >= TimeSpan.Zero, "Conveyor:Schedules:WakePeriod must be positive and MisfireGrace not negative")
            .ValidateOnStart();
        services.AddOptions<ReminderOptions>().Configure<IOptions<RunEngineOptions>, IOptions<FlowControlOptions>, IOptions<ScheduleOptions>>((r, e, f, s) =>
        {
            var shortest = new[] { e.Value.KeepAlivePeriod, f.Value.VerifyPeriod, s.Value.WakePeriod }.Min();
            r.MinimumReminderPeriod = shortest < r.MinimumReminderPeriod ? shortest : r.MinimumReminderPeriod;
        });
        services.AddConveyorLifecycle();
        services.AddSingleton<DriverResultConsumer>();
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<DriverResultConsumer>());
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>, StreamSetupParticipant>();
        services.TryAddSingleton<ILogStore, JetStreamLogStore>();
        services.AddSingleton<LogIngestor>();
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<LogIngestor>());

        // Telemetry and events out: instruments on the meter "Conveyor", spans on the activity source "Conveyor",
        // CDEvents to JetStream and an optional HTTP sink.
        services.AddMetrics();
        services.TryAddSingleton<ConveyorMetrics>();
        services.AddOptions<CDEventsOptions>().BindConfiguration(CDEventsOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.TryAddSingleton<CDEventHttpSink>();
        services.AddHostedService(sp => sp.GetRequiredService<CDEventHttpSink>());
        services.TryAddSingleton<CDEventPublisher>();
        builder.AddOutgoingGrainCallFilter<TraceContextFilter>();
        return builder;
    }

    /// <summary>
    /// Keeps grain state and reminders in Redis: <c>Microsoft.Orleans.Persistence.Redis</c> for the
    /// <see cref="ConveyorStorage.Name"/> provider and <c>Microsoft.Orleans.Reminders.Redis</c>; the run listing index
    /// lives in the same Redis.
    /// </summary>
    public static ISiloBuilder UseConveyorRedisStorage(this ISiloBuilder builder, string connectionString)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(connectionString);
        // Orleans' binary serializer rather than the default JSON one: a 1,000-step run is ~8x smaller and its
        // state is rewritten on every transition. Every persisted type is [GenerateSerializer] with stable [Id]s.
        builder.AddRedisGrainStorage(ConveyorStorage.Name, ob => ob.Configure<Serializer>((o, serializer) =>
        {
            o.ConfigurationOptions = ParseRedis(connectionString);
            o.GrainStorageSerializer = new OrleansGrainStorageSerializer(serializer);
            // A deleted resource or pipeline leaves no record behind.
            o.DeleteStateOnClear = true;
        }));
        builder.UseRedisReminderService(o => o.ConfigurationOptions = ParseRedis(connectionString));
        builder.Services.AddSingleton(_ => new ConveyorRedis(ParseRedis(connectionString)));
        builder.Services.AddSingleton<IRunIndex, RedisRunIndex>();
        builder.Services.AddSingleton<IRunRetentionIndex, RedisRunRetentionIndex>();
        builder.Services.AddSingleton<IObjectCatalog, RedisObjectCatalog>();
        // Runs in a Redis layout of their own, so a transition writes only what it changed; a run stored whole by the
        // grain storage (earlier versions) is still read from there.
        builder.Services.AddSingleton<IRunStore>(sp => ActivatorUtilities.CreateInstance<RedisRunStore>(
            sp, new GrainStorageRunStore(sp.GetRequiredKeyedService<IGrainStorage>(ConveyorStorage.Name))));
        return builder;
    }

    /// <summary>Uses Redis for cluster membership (<c>Microsoft.Orleans.Clustering.Redis</c>).</summary>
    public static ISiloBuilder UseConveyorRedisClustering(this ISiloBuilder builder, string connectionString)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(connectionString);
        builder.UseRedisClustering(o => o.ConfigurationOptions = ParseRedis(connectionString));
        return builder;
    }

    private static ConfigurationOptions ParseRedis(string connectionString)
    {
        var options = ConfigurationOptions.Parse(connectionString);
        // Keep retrying through a Redis restart instead of failing the silo at the first refused connection.
        options.AbortOnConnectFail = false;
        return options;
    }

    private sealed class ConveyorGrainsMarker;

    /// <summary>
    /// Carries the caller's trace context into grain calls. Orleans' own activity propagation injects it only when a
    /// listener samples its grain-call activities; this makes a run's spans children of the HTTP request that started
    /// them whatever listens.
    /// </summary>
    private sealed class TraceContextFilter : IOutgoingGrainCallFilter
    {
        public Task Invoke(IOutgoingGrainCallContext context)
        {
            if (Activity.Current is { IdFormat: ActivityIdFormat.W3C } current)
            {
                Orleans.Runtime.RequestContext.Set("traceparent", current.Id!);
            }

            return context.Invoke();
        }
    }

    /// <summary>Creates the JetStream streams before the silo accepts work.</summary>
    private sealed class StreamSetupParticipant(
        INatsConnection connection, IOptions<ConveyorNatsOptions> options, IOptions<CDEventsOptions> events, IOptions<RunArchiveOptions> archive, ILogger<StreamSetupParticipant> logger)
        : ILifecycleParticipant<ISiloLifecycle>
    {
        public void Participate(ISiloLifecycle lifecycle) =>
            lifecycle.Subscribe(nameof(StreamSetupParticipant), ServiceLifecycleStage.RuntimeInitialize, async ct =>
            {
                await connection.ConnectAsync().ConfigureAwait(false);
                await JetStreamTopology.EnsureStreamsAsync(new NatsJSContext((NatsConnection)connection), options.Value, events.Value.Enabled ? events.Value.Retention : null, logger, ct).ConfigureAwait(false);
                await LifecycleStreams.EnsureAsync(new NatsJSContext((NatsConnection)connection), options.Value, archive.Value, logger, ct).ConfigureAwait(false);
            });
    }
}
