using System.Diagnostics;
using Conveyor.Grains.Catalog;
using Conveyor.Grains;
using Conveyor.Grains.Events;
using Conveyor.Grains.Flow;
using Conveyor.Grains.Logs;
using Conveyor.Grains.Nats;
using Conveyor.Grains.Resilience;
using Conveyor.Grains.Resources;
using Conveyor.Grains.Runs;
using Conveyor.Grains.Telemetry;
using Conveyor.Grains.Triggers;
using Conveyor.Nats;
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
public static partial class ConveyorSiloBuilderExtensions
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
        // A grain call that fails on Redis or NATS must reach its caller on another silo as that error, not as Orleans'
        // CodecNotFoundException: callers (the result consumer, the API) tell a lost connection from a refusal by type.
        services.Configure<ExceptionSerializationOptions>(o =>
        {
            o.SupportedNamespacePrefixes.Add("StackExchange.Redis");
            o.SupportedNamespacePrefixes.Add("NATS");
        });
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
        services.TryAddSingleton<JetStreamPublisher>();
        services.TryAddSingleton<RunServices>();
        services.TryAddSingleton<RunLauncher>();
        services.TryAddSingleton<IRunIndex, NoRunIndex>();
        services.TryAddSingleton<IObjectCatalog, NoObjectCatalog>();
        // Runs live in the host's grain storage provider unless a store of their own is registered (Redis is).
        services.TryAddSingleton<IRunStore>(sp => new GrainStorageRunStore(sp.GetRequiredKeyedService<IGrainStorage>(ConveyorStorage.Name)));
        services.AddOptions<ResourceOptions>().BindConfiguration(ResourceOptions.Section)
            .Validate(o => o.IdleResidence > TimeSpan.Zero, "Conveyor:Resources:IdleResidence must be positive").ValidateOnStart();
        // A resource holds nothing its storage does not: it goes after its idle residence, not Orleans' 15 minutes. A
        // host that sets an age for the type itself keeps it.
        services.AddOptions<GrainCollectionOptions>().Configure<IOptions<ResourceOptions>>((collection, resources) =>
            collection.ClassSpecificCollectionAge.TryAdd(typeof(ResourceGrain).FullName!, resources.Value.IdleResidence));
        services.AddOptions<RunEngineOptions>().BindConfiguration(RunEngineOptions.Section)
            .Validate(o => o.KeepAlivePeriod > TimeSpan.Zero, "Conveyor:Runs:KeepAlivePeriod must be positive")
            .Validate(o => o.FinishedRunResidence >= TimeSpan.Zero, "Conveyor:Runs:FinishedRunResidence must not be negative").ValidateOnStart();
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
        services.TryAddSingleton<JetStreamStatus>();
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>, StreamSetupParticipant>();
        services.TryAddSingleton<ILogStore, JetStreamLogStore>();
        services.TryAddSingleton<Conveyor.Grains.Security.SecretMasker>();
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
        services.AddOptions<RunEventsOptions>().BindConfiguration(RunEventsOptions.Section).ValidateDataAnnotations()
            .Validate(o => o.Retention > TimeSpan.Zero && o.DuplicateWindow > TimeSpan.Zero, "Conveyor:RunEvents:Retention and DuplicateWindow must be positive").ValidateOnStart();
        services.TryAddSingleton<RunEventFeed>();
        builder.AddOutgoingGrainCallFilter<TraceContextFilter>();
        return builder;
    }

    /// <summary>
    /// Keeps grain state and reminders in Redis: <c>Microsoft.Orleans.Persistence.Redis</c> for the
    /// <see cref="ConveyorStorage.Name"/> provider and <c>Microsoft.Orleans.Reminders.Redis</c>; the run store, the run
    /// listing index and the write rate limit live in the same Redis, on one shared connection
    /// (<see cref="ConveyorRedis"/>). A Sentinel connection string (<c>sentinel1:26379,sentinel2:26379,serviceName=conveyor</c>)
    /// follows failovers, and writes then wait for a replica (<c>Conveyor:Redis</c>, <see cref="ConveyorRedisOptions"/>).
    /// </summary>
    public static ISiloBuilder UseConveyorRedisStorage(this ISiloBuilder builder, string connectionString)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(connectionString);
        var services = builder.Services;
        services.AddOptions<ConveyorRedisOptions>().BindConfiguration(ConveyorRedisOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton(sp => new ConveyorRedis(
            ParseRedis(connectionString), sp.GetRequiredService<IOptions<ConveyorRedisOptions>>().Value, sp.GetRequiredService<ILogger<ConveyorRedis>>()));

        // Orleans' binary serializer rather than the default JSON one: a 1,000-step run is ~8x smaller and its
        // state is rewritten on every transition. Every persisted type is [GenerateSerializer] with stable [Id]s.
        // Grain storage and reminders share Conveyor's connection, so a replica WAIT after a write covers theirs too.
        builder.AddRedisGrainStorage(ConveyorStorage.Name, ob => ob.Configure<Serializer, ConveyorRedis>((o, serializer, shared) =>
        {
            o.ConfigurationOptions = ParseRedis(connectionString);
            o.CreateMultiplexer = async _ => (await shared.GetMultiplexerAsync().ConfigureAwait(false), true);
            o.GrainStorageSerializer = new OrleansGrainStorageSerializer(serializer);
            // A deleted resource or pipeline leaves no record behind.
            o.DeleteStateOnClear = true;
        }));
        DecorateGrainStorage(services, ConveyorStorage.Name, (sp, inner) => new ReplicatedGrainStorage(inner, sp.GetRequiredService<ConveyorRedis>()));
        builder.UseRedisReminderService(o => o.ConfigurationOptions = ParseRedis(connectionString));
        services.AddOptions<RedisReminderTableOptions>().Configure<ConveyorRedis>((o, shared) =>
            o.CreateMultiplexer = async _ => (await shared.GetMultiplexerAsync().ConfigureAwait(false), true));
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>, RedisSafetyParticipant>();
        services.AddSingleton<IRunIndex, RedisRunIndex>();
        services.AddSingleton<IRunRetentionIndex, RedisRunRetentionIndex>();
        services.AddSingleton<IObjectCatalog, RedisObjectCatalog>();
        // Runs in a Redis layout of their own, so a transition writes only what it changed; a run stored whole by the
        // grain storage (earlier versions) is still read from there.
        services.AddSingleton<IRunStore>(sp => ActivatorUtilities.CreateInstance<RedisRunStore>(
            sp, new GrainStorageRunStore(sp.GetRequiredKeyedService<IGrainStorage>(ConveyorStorage.Name))));
        return builder;
    }

    /// <summary>
    /// Uses Redis for cluster membership (<c>Microsoft.Orleans.Clustering.Redis</c>), on a connection of its own (so a
    /// replica WAIT on the shared one never delays a heartbeat) that follows Sentinel failovers like the shared one.
    /// </summary>
    public static ISiloBuilder UseConveyorRedisClustering(this ISiloBuilder builder, string connectionString)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(connectionString);
        builder.UseRedisClustering(o => o.ConfigurationOptions = ParseRedis(connectionString));
        builder.Services.AddOptions<Orleans.Clustering.Redis.RedisClusteringOptions>().Configure<ILoggerFactory>((o, logs) =>
            o.CreateMultiplexer = async options =>
                (await RedisFailover.ConnectAsync(options.ConfigurationOptions!, logs.CreateLogger(typeof(RedisFailover))).ConfigureAwait(false), false));
        return builder;
    }

    /// <summary>
    /// Parses a Redis connection string the way every connection of the silo uses it, and chooses where replies are
    /// completed. On a plain Redis (no Sentinel), on the .NET thread pool rather than handed over from the library's
    /// own reader threads: that hand-over cost about a tenth of the silo's CPU per step under load
    /// (docs/operations/benchmarks.md, fifth round). With Sentinel, on the library's reader threads: its
    /// failover handling (<c>SwitchPrimary</c>) waits synchronously for Redis replies on pool threads, so with replies
    /// also needing the pool, a primary paused past its failover starved the pool for seconds and runs missed their
    /// deadline (the cluster pause test failed 1 run of 4 this way, 2 of 3 in the second round).
    /// </summary>
    internal static ConfigurationOptions ParseRedis(string connectionString)
    {
        var options = ConfigurationOptions.Parse(connectionString);
        // Keep retrying through a Redis restart instead of failing the silo at the first refused connection.
        options.AbortOnConnectFail = false;
        options.SocketManager = string.IsNullOrEmpty(options.ServiceName) ? SocketManager.ThreadPool : SocketManager.Shared;
        return options;
    }

    /// <summary>Wraps the keyed grain storage <paramref name="name"/> registered last (Orleans' lifecycle hook follows the key).</summary>
    private static void DecorateGrainStorage(IServiceCollection services, string name, Func<IServiceProvider, IGrainStorage, IGrainStorage> decorate)
    {
        var registered = services.Last(d => d.ServiceType == typeof(IGrainStorage) && d.IsKeyedService && Equals(d.ServiceKey, name));
        var factory = registered.KeyedImplementationFactory
            ?? throw new InvalidOperationException($"grain storage '{name}' is not registered through a factory");
        services.Remove(registered);
        services.AddKeyedSingleton<IGrainStorage>(name, (sp, key) => decorate(sp, (IGrainStorage)factory(sp, key)));
    }

    private sealed class ConveyorGrainsMarker;

    /// <summary>Refuses to start the silo on a Redis that can evict keys.</summary>
    private sealed partial class RedisSafetyParticipant(ConveyorRedis redis, ILogger<RedisSafetyParticipant> logger) : ILifecycleParticipant<ISiloLifecycle>
    {
        public void Participate(ISiloLifecycle lifecycle) =>
            lifecycle.Subscribe(nameof(RedisSafetyParticipant), ServiceLifecycleStage.RuntimeInitialize, async _ =>
            {
                string? policy;
                try
                {
                    policy = await redis.EvictingPolicyAsync().ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is RedisException or TimeoutException)
                {
                    // Unreachable now: the providers wait for it, and readiness reports the policy once it answers.
                    LogUncheckable(logger, ex.Message);
                    return;
                }

                if (policy is not null)
                {
                    throw new InvalidOperationException(ConveyorRedis.EvictionProblem(policy) + " (or set Conveyor:Redis:RequireNoEviction=false).");
                }
            });

        [LoggerMessage(Level = LogLevel.Warning, Message = "Cannot check Redis' maxmemory-policy at start ({Reason}); readiness checks it once Redis answers")]
        private static partial void LogUncheckable(ILogger logger, string reason);
    }

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

    /// <summary>
    /// Creates the JetStream streams before the silo accepts work. When JetStream refuses them as configured (more
    /// replicas than the cluster can place), the silo still starts, reports it through <see cref="JetStreamStatus"/>
    /// (so <c>/readyz</c> says what is wrong) and tries again every few seconds.
    /// </summary>
    private sealed partial class StreamSetupParticipant(
        INatsConnection connection, IOptions<ConveyorNatsOptions> options, IOptions<CDEventsOptions> events, IOptions<RunArchiveOptions> archive,
        IOptions<RunEventsOptions> runEvents, RunEventFeed runEventFeed, JetStreamStatus status, ILogger<StreamSetupParticipant> logger)
        : ILifecycleParticipant<ISiloLifecycle>, IDisposable
    {
        private static readonly TimeSpan RetryPeriod = TimeSpan.FromSeconds(5);
        private static readonly TimeSpan StartPatience = TimeSpan.FromSeconds(30);
        private readonly CancellationTokenSource _stopping = new();

        public void Dispose() => _stopping.Dispose();

        public void Participate(ISiloLifecycle lifecycle) =>
            lifecycle.Subscribe(nameof(StreamSetupParticipant), ServiceLifecycleStage.RuntimeInitialize, StartAsync, StopAsync);

        private async Task StartAsync(CancellationToken ct)
        {
            await connection.ConnectAsync().ConfigureAwait(false);
            // A JetStream cluster that is electing leaders (or busy with other silos creating the same streams)
            // answers late or with 503 for a while; that is waited out here, a refusal is reported and retried later.
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (true)
            {
                try
                {
                    await EnsureAsync(ct).ConfigureAwait(false);
                    return;
                }
                catch (JetStreamPlacementException ex)
                {
                    status.Set(ex.Problems);
                    break;
                }
                catch (Exception ex) when (TransientFaults.IsTransient(ex) && !ct.IsCancellationRequested)
                {
                    if (clock.Elapsed > StartPatience)
                    {
                        status.Set([$"JetStream streams are not set up yet: {ex.Message}"]);
                        break;
                    }

                    LogRetryFailed(logger, ex.Message);
                    await Task.Delay(TimeSpan.FromMilliseconds(500), ct).ConfigureAwait(false);
                }
            }

            _ = Task.Run(() => RetryAsync(_stopping.Token), CancellationToken.None);
        }

        private async Task StopAsync(CancellationToken ct) => await _stopping.CancelAsync().ConfigureAwait(false);

        private async Task EnsureAsync(CancellationToken ct)
        {
            var js = new NatsJSContext((NatsConnection)connection);
            await JetStreamTopology.EnsureStreamsAsync(js, options.Value, events.Value.Enabled ? events.Value.Retention : null, logger, ct).ConfigureAwait(false);
            await LifecycleStreams.EnsureAsync(js, options.Value, archive.Value, logger, ct).ConfigureAwait(false);
            if (runEvents.Value.Enabled)
            {
                await runEventFeed.EnsureStreamAsync(ct).ConfigureAwait(false);
            }
        }

        private async Task RetryAsync(CancellationToken ct)
        {
            while (!ct.IsCancellationRequested)
            {
                try
                {
                    await Task.Delay(RetryPeriod, ct).ConfigureAwait(false);
                    await EnsureAsync(ct).ConfigureAwait(false);
                    status.Set([]);
                    return;
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    return;
                }
                catch (JetStreamPlacementException ex)
                {
                    status.Set(ex.Problems);
                }
                catch (Exception ex) when (TransientFaults.IsTransient(ex))
                {
                    status.Set([$"JetStream streams are not set up yet: {ex.Message}"]);
                    LogRetryFailed(logger, ex.Message);
                }
            }
        }

        [LoggerMessage(Level = LogLevel.Warning, Message = "Setting up the JetStream streams failed again: {Reason}")]
        private static partial void LogRetryFailed(ILogger logger, string reason);
    }
}
