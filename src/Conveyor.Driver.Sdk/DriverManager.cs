using System.Collections.Concurrent;
using System.Collections.ObjectModel;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Conveyor.Client;
using Conveyor.Contracts;
using Conveyor.Nats;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Conveyor.Driver.Sdk;

/// <summary>
/// Runs one <see cref="IDriver"/> under one driver name: owns the NATS connection, pulls messages from durable
/// JetStream consumers, reconciles them with bounded parallelism, publishes each result and only then acknowledges
/// the message.
/// </summary>
/// <remarks>
/// <para>
/// <b>Consumers.</b> nats-server 2.9 has no multi-filter consumers, so instead of the original's single consumer with
/// two filters per resource type, the manager creates, on stream <c>messages</c>, two durable pull consumers for each
/// resource type <c>r</c> (explicit ack, deliver all, <see cref="DriverOptions.AckWait"/>,
/// <c>max_ack_pending</c> = <see cref="DriverOptions.MaxAckPending"/> or <see cref="DriverOptions.MaxConcurrency"/>):
/// <c>{driver}-steps-{r}</c> filtered on <c>drivers.{driver}.resources.{r}</c> (pipeline steps sent by the engine) and
/// <c>{driver}-resources-{r}</c> filtered on <c>resources.{r}</c> (resources without a pipeline). Every instance with
/// the same driver name binds to the same durable consumers, so the instances split the work (competing consumers)
/// and a dead instance's unacknowledged messages go to another one.
/// </para>
/// <para>
/// <b>Flow control.</b> Each consumer pulls one message at a time and waits for one of
/// <see cref="DriverOptions.MaxConcurrency"/> slots shared by all consumers before pulling the next, so at most
/// <c>MaxConcurrency</c> reconciles run at once and at most one message per consumer waits for a slot. Held messages
/// are kept alive with progress acknowledgements every third of <see cref="DriverOptions.AckWait"/>.
/// </para>
/// <para>
/// <b>Try-Catch-Ack.</b> A reconcile that throws is reported as <c>success: false</c> with the exception's message.
/// The result is published to JetStream <c>pipelines.driver.result</c>, with the <c>Conveyor-Step-Id</c> and
/// <c>Conveyor-Attempt</c> headers of the incoming message echoed; the message is acknowledged only after JetStream
/// has stored the result, and negatively acknowledged with <see cref="DriverOptions.RetryDelay"/> if the publish fails.
/// A message that cannot be decoded is terminated (never redelivered); a failure result is published for it when its
/// run id can be read.
/// </para>
/// <para>
/// <b>Cancellation.</b> The manager subscribes (core NATS) to <c>conveyor.cancel.{driver}</c>, where the engine sends a
/// <see cref="CancelMessage"/> when it no longer wants a step. A cancel matches a message taken from JetStream and not
/// yet settled when its run id is the message's, its step is the message's (if the message has one) and its attempt is
/// the message's (if both have one). The match sets <see cref="DriverContext.CancellationReason"/>, then cancels the
/// reconcile's token (a message still waiting for a slot is not reconciled at all). Whatever the reconcile then does,
/// the result is <c>success: false</c> with the message <c>cancelled: {reason}</c>, published and acknowledged like any
/// other so the message is not delivered again; the engine ignores it as stale. Cancels that match nothing, and cancel
/// messages that cannot be decoded, are logged and ignored.
/// </para>
/// <para>
/// <b>Shutdown.</b> When the token passed to <see cref="RunAsync"/> is cancelled the manager stops pulling (waiting at
/// most <see cref="DriverOptions.FetchExpiry"/> for outstanding pull requests to expire, since JetStream cannot
/// withdraw them), lets in-flight reconciles finish for up to <see cref="DriverOptions.ShutdownGracePeriod"/>, then
/// cancels their tokens and hands back (naks) the messages that did not finish, so another instance takes them at once.
/// </para>
/// </remarks>
public sealed partial class DriverManager : IAsyncDisposable
{
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(5);

    /// <summary>Headers of the incoming message that the result carries too.</summary>
    private static readonly string[] EchoedHeaders = [Headers.StepId, Headers.Attempt, Headers.TraceParent];

    private readonly IDriver _driver;
    private readonly DriverOptions _options;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly NatsConnection _connection;
    private readonly NatsJSContext _jetStream;
    private readonly JetStreamPublisher _results;
    private readonly SemaphoreSlim _slots;
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ConcurrentDictionary<Delivery, byte> _inFlight = new();
    private INatsSub<byte[]>? _cancelSubscription;
    private int _started;

    /// <summary>Creates a manager; nothing connects until <see cref="RunAsync"/>.</summary>
    /// <param name="driver">The driver to run.</param>
    /// <param name="options">Settings; an empty name or resource list is taken from <paramref name="driver"/>.</param>
    /// <param name="loggerFactory">Logging for the manager and the NATS client.</param>
    /// <param name="timeProvider">Clock for log timestamps, heartbeats and retry delays.</param>
    /// <exception cref="DriverConfigurationException">The resulting options are invalid.</exception>
    public DriverManager(IDriver driver, DriverOptions options, ILoggerFactory? loggerFactory = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(driver);
        ArgumentNullException.ThrowIfNull(options);
        _options = options.ResolveFor(driver);
        _options.Validate();
        _driver = driver;
        _timeProvider = timeProvider ?? TimeProvider.System;
        loggerFactory ??= NullLoggerFactory.Instance;
        _logger = loggerFactory.CreateLogger<DriverManager>();
        Name = _options.Name!;
        Resources = [.. _options.Resources.Distinct(StringComparer.Ordinal)];
        ConsumerNames = [.. Resources.SelectMany(r => new[] { StepsConsumerName(Name, r), ResourcesConsumerName(Name, r) })];
        _slots = new SemaphoreSlim(_options.MaxConcurrency, _options.MaxConcurrency);
        _connection = new NatsConnection(CreateNatsOpts(_options, loggerFactory));
        _jetStream = new NatsJSContext(_connection);
        // Acknowledgements time out by the wall clock whatever clock the driver's own logic runs on.
        _results = new JetStreamPublisher(_connection, TimeProvider.System, loggerFactory.CreateLogger<JetStreamPublisher>());
        if (!string.IsNullOrEmpty(_options.ApiUrl))
        {
            var root = _options.ApiUrl.EndsWith('/') ? _options.ApiUrl : _options.ApiUrl + "/";
            _api = new HttpClient { BaseAddress = new Uri(root), Timeout = TimeSpan.FromSeconds(30) };
            _apiClient = new ConveyorClient(_api);
        }
    }

    private readonly HttpClient? _api;
    private readonly ConveyorClient? _apiClient;

    /// <summary><c>GET /step-secrets</c> with the event's step token.</summary>
    private async Task<IReadOnlyDictionary<string, string>> FetchSecretsAsync(DriverEvent driverEvent, string? name, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(driverEvent.StepToken))
        {
            throw new InvalidOperationException("This event carries no step token: it is not a pipeline step, or the server has no secrets key.");
        }

        var secrets = await _apiClient!.GetStepSecretsAsync(driverEvent.StepToken, name, cancellationToken).ConfigureAwait(false);
        var values = new Dictionary<string, string>(secrets.Secrets, StringComparer.Ordinal);
        return new ReadOnlyDictionary<string, string>(values);
    }

    /// <summary>Driver name in force.</summary>
    public string Name { get; }

    /// <summary>Resource types in force.</summary>
    public IReadOnlyList<string> Resources { get; }

    /// <summary>Names of the durable consumers the manager uses on stream <c>messages</c>.</summary>
    public IReadOnlyList<string> ConsumerNames { get; }

    /// <summary>Messages taken from JetStream and not yet acknowledged or handed back.</summary>
    public int InFlightCount => _inFlight.Count;

    /// <summary>Durable consumer for pipeline steps of <paramref name="resourceType"/> sent to <paramref name="driver"/>.</summary>
    public static string StepsConsumerName(string driver, string resourceType) => $"{driver}-steps-{resourceType}";

    /// <summary>Durable consumer for resources of <paramref name="resourceType"/> without a pipeline.</summary>
    public static string ResourcesConsumerName(string driver, string resourceType) => $"{driver}-resources-{resourceType}";

    /// <summary>
    /// Completes once <see cref="RunAsync"/> has subscribed to cancel messages, created its consumers and starts pulling.
    /// </summary>
    public Task WaitUntilReadyAsync(CancellationToken cancellationToken = default) => _ready.Task.WaitAsync(cancellationToken);

    /// <summary>
    /// Connects, creates the consumers (retrying until the streams exist) and processes messages until
    /// <paramref name="cancellationToken"/> is cancelled; then shuts down gracefully and returns.
    /// </summary>
    /// <exception cref="InvalidOperationException">The manager is already running or has run.</exception>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _started, 1) != 0)
        {
            throw new InvalidOperationException("A DriverManager runs once; create a new one to run again.");
        }

        LogStarting(_logger, Name, Resources, _options);
        IReadOnlyList<INatsJSConsumer> consumers;
        try
        {
            consumers = await SetUpAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await StopCancelSubscriptionAsync(Task.CompletedTask).ConfigureAwait(false);
            _ready.TrySetCanceled(cancellationToken);
            return;
        }

        // Cancels keep arriving while in-flight reconciles drain at shutdown; the subscription ends after them.
        var cancelLoop = Task.Run(() => CancelLoopAsync(_cancelSubscription!), CancellationToken.None);
        using var heartbeatStop = new CancellationTokenSource();
        var heartbeats = Task.Run(() => EngineHeartbeatLoopAsync(heartbeatStop.Token), CancellationToken.None);
        _ready.TrySetResult();
        LogReady(_logger, Name, ConsumerNames);

        using var abort = new CancellationTokenSource();
        using var pullStop = new CancellationTokenSource();
        var stopRequestedAt = 0L;
        using var onStop = cancellationToken.Register(() =>
        {
            Volatile.Write(ref stopRequestedAt, _timeProvider.GetTimestamp());
            // Outstanding pull requests are left to expire (see PullLoopAsync); this is only the backstop.
            pullStop.CancelAfter(_options.FetchExpiry + TimeSpan.FromSeconds(1));
        });
        var loops = consumers.Select(c => Task.Run(() => PullLoopAsync(c, cancellationToken, pullStop.Token, abort.Token), CancellationToken.None));
        await Task.WhenAll(loops).ConfigureAwait(false);
        var remainingGrace = _options.ShutdownGracePeriod - _timeProvider.GetElapsedTime(Volatile.Read(ref stopRequestedAt));
        await DrainAsync(remainingGrace, abort).ConfigureAwait(false);
        await heartbeatStop.CancelAsync().ConfigureAwait(false);
        await heartbeats.ConfigureAwait(false);
        await StopCancelSubscriptionAsync(cancelLoop).ConfigureAwait(false);
        await FlushAsync().ConfigureAwait(false);
        LogStopped(_logger, Name);
    }

    /// <summary>
    /// Acks and naks are buffered writes; a ping round trip proves the server has them before the connection may be
    /// closed (a lost nak would leave a handed-back message waiting for AckWait).
    /// </summary>
    private async Task FlushAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5), _timeProvider);
        try
        {
            await _connection.PingAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            LogFlushFailed(_logger, ex, Name);
        }
    }

    /// <summary>Closes the NATS connection.</summary>
    public async ValueTask DisposeAsync()
    {
        await _results.DisposeAsync().ConfigureAwait(false);
        await _connection.DisposeAsync().ConfigureAwait(false);
        _slots.Dispose();
        _api?.Dispose();
    }

    private static string? NullIfEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;

    private static NatsOpts CreateNatsOpts(DriverOptions options, ILoggerFactory loggerFactory)
    {
        var auth = NatsAuthOpts.Default;
        if (!string.IsNullOrEmpty(options.NatsToken))
        {
            auth = auth with { Token = options.NatsToken };
        }
        else if (!string.IsNullOrEmpty(options.NatsUser))
        {
            auth = auth with { Username = options.NatsUser, Password = options.NatsPassword };
        }

        return NatsOpts.Default with
        {
            Url = options.NatsUrl,
            Name = "Conveyor Driver Manager - " + options.Name,
            AuthOpts = auth,
            TlsOpts = string.IsNullOrEmpty(options.NatsTlsCaFile) && string.IsNullOrEmpty(options.NatsTlsCertFile)
                ? NatsTlsOpts.Default
                : NatsTlsOpts.Default with
                {
                    Mode = TlsMode.Require,
                    CaFile = NullIfEmpty(options.NatsTlsCaFile),
                    CertFile = NullIfEmpty(options.NatsTlsCertFile),
                    KeyFile = NullIfEmpty(options.NatsTlsKeyFile),
                },
            LoggerFactory = loggerFactory,
            // A driver outlives NATS restarts: keep reconnecting, JetStream keeps the work.
            MaxReconnectRetry = -1,
            ReconnectWaitMin = TimeSpan.FromMilliseconds(100),
            ReconnectWaitMax = TimeSpan.FromSeconds(2),
        };
    }

    /// <summary>
    /// Subscribes to cancel messages and creates the consumers, retrying until NATS answers and the streams exist.
    /// Returns once the server has registered the subscription, so no cancel sent after readiness is missed.
    /// </summary>
    private async Task<IReadOnlyList<INatsJSConsumer>> SetUpAsync(CancellationToken cancellationToken)
    {
        var delay = TimeSpan.FromMilliseconds(200);
        while (true)
        {
            try
            {
                _cancelSubscription ??= await _connection.SubscribeCoreAsync<byte[]>(Subjects.Cancel(Name), cancellationToken: cancellationToken).ConfigureAwait(false);
                var consumers = new List<INatsJSConsumer>();
                foreach (var resource in Resources)
                {
                    consumers.Add(await CreateConsumerAsync(StepsConsumerName(Name, resource), Subjects.DriverResources(Name, resource), cancellationToken).ConfigureAwait(false));
                    consumers.Add(await CreateConsumerAsync(ResourcesConsumerName(Name, resource), Subjects.Resources(resource), cancellationToken).ConfigureAwait(false));
                }

                // The server handles a connection's commands in order: once it answers this ping it has the SUB.
                await _connection.PingAsync(cancellationToken).ConfigureAwait(false);
                return consumers;
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
            {
                LogSetupFailed(_logger, ex, Name, delay);
                await Task.Delay(delay, _timeProvider, cancellationToken).ConfigureAwait(false);
                delay = Min(delay * 2, MaxBackoff);
            }
        }
    }

    private async Task<INatsJSConsumer> CreateConsumerAsync(string name, string filterSubject, CancellationToken cancellationToken) =>
        await _jetStream.CreateOrUpdateConsumerAsync(
            Subjects.MessagesStream,
            new ConsumerConfig(name)
            {
                FilterSubject = filterSubject,
                AckPolicy = ConsumerConfigAckPolicy.Explicit,
                DeliverPolicy = ConsumerConfigDeliverPolicy.All,
                AckWait = _options.AckWait,
                MaxAckPending = _options.MaxAckPending ?? _options.MaxConcurrency,
            },
            cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// After a failed pull: creates the consumer again (it may have been deleted, or its stream re-created); keeps the
    /// old handle when that fails too, so the loop simply retries.
    /// </summary>
    private async Task<INatsJSConsumer> RecreateAsync(INatsJSConsumer consumer, CancellationToken cancellationToken)
    {
        var config = consumer.Info.Config;
        try
        {
            return await CreateConsumerAsync(config.Name!, config.FilterSubject!, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return consumer;
        }
        catch (Exception ex)
        {
            LogSetupFailed(_logger, ex, Name, TimeSpan.Zero);
            return consumer;
        }
    }

    /// <summary>
    /// Pulls from <paramref name="consumer"/> as many messages as there are free slots (at least one) per pull
    /// request, and starts a handler for each once a slot is free. One pull per message would cost a server round trip
    /// per step, capping a driver at one step per round trip however much concurrency it has.
    /// </summary>
    /// <remarks>
    /// JetStream cannot withdraw a pull request: one abandoned client-side stays on the server until it expires and
    /// would swallow the next message (including one this manager hands back), which then waits for AckWait. So on
    /// <paramref name="stopping"/> the outstanding pull is left to finish (at most <see cref="DriverOptions.FetchExpiry"/>);
    /// every message it still brings is handed straight back. Only then are unfinished messages naked, so their
    /// redelivery goes to a live instance.
    /// </remarks>
    private async Task PullLoopAsync(INatsJSConsumer consumer, CancellationToken stopping, CancellationToken pullStop, CancellationToken abort)
    {
        var delay = TimeSpan.FromMilliseconds(200);
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                var batch = Math.Max(1, _slots.CurrentCount);
                var received = 0;
                await foreach (var msg in consumer.FetchAsync<byte[]>(new NatsJSFetchOpts { MaxMsgs = batch, Expires = _options.FetchExpiry }, cancellationToken: pullStop).ConfigureAwait(false))
                {
                    delay = TimeSpan.FromMilliseconds(200);
                    received++;
                    await AcceptAsync(msg, stopping, abort).ConfigureAwait(false);
                }

                if (received == 0 && !stopping.IsCancellationRequested)
                {
                    // A fetch ends quietly when its consumer was deleted; asking the server throws then, which recreates it.
                    await consumer.RefreshAsync(stopping).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (pullStop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                LogPullFailed(_logger, ex, consumer.Info.Name, delay);
                try
                {
                    await Task.Delay(delay, _timeProvider, stopping).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                delay = Min(delay * 2, MaxBackoff);
                consumer = await RecreateAsync(consumer, stopping).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Starts a handler for <paramref name="msg"/> once a slot is free, or hands it back when stopping.</summary>
    private async Task AcceptAsync(INatsJSMsg<byte[]> msg, CancellationToken stopping, CancellationToken abort)
    {
        if (stopping.IsCancellationRequested)
        {
            await NakQuietlyAsync(msg, TimeSpan.Zero).ConfigureAwait(false);
            LogHandedBack(_logger, Name, msg.Subject);
            return;
        }

        // Decoded now, so that a cancel can match a message that is still waiting for a slot.
        var delivery = new Delivery(msg, Decode(msg), _options.AckWait / 3, _timeProvider, HeartbeatAsync, abort);
        _inFlight.TryAdd(delivery, 0);
        try
        {
            await _slots.WaitAsync(stopping).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Shutting down before the message got a slot: hand it back untouched. The pull that brought it is used
            // up (or is drained by the caller), so the redelivery goes to another instance.
            if (delivery.TryHandBack())
            {
                await delivery.StopHeartbeatAsync().ConfigureAwait(false);
                await NakQuietlyAsync(msg, TimeSpan.Zero).ConfigureAwait(false);
                LogHandedBack(_logger, Name, msg.Subject);
            }

            await FinishAsync(delivery).ConfigureAwait(false);
            return;
        }

        _ = Task.Run(() => HandleAsync(delivery, abort), CancellationToken.None);
    }

    private async Task HandleAsync(Delivery delivery, CancellationToken abort)
    {
        try
        {
            await ProcessAsync(delivery, abort).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            LogUnexpected(_logger, ex, Name, delivery.Message.Subject);
        }
        finally
        {
            try
            {
                _slots.Release();
            }
            catch (ObjectDisposedException)
            {
                // A reconcile that ignored cancellation outlived its disposed manager.
            }

            await FinishAsync(delivery).ConfigureAwait(false);
        }
    }

    private async Task FinishAsync(Delivery delivery)
    {
        await delivery.StopHeartbeatAsync().ConfigureAwait(false);
        _inFlight.TryRemove(delivery, out _);
        delivery.Done.TrySetResult();
        delivery.Dispose();
    }

    private async Task ProcessAsync(Delivery delivery, CancellationToken abort)
    {
        var msg = delivery.Message;
        if (delivery.Decoded.Event is not { } driverEvent)
        {
            await HandleMalformedAsync(delivery, delivery.Decoded.RunId, delivery.Decoded.Error, abort).ConfigureAwait(false);
            return;
        }

        LogReconciling(_logger, Name, driverEvent.Event, driverEvent.RunId, driverEvent.Resource.Name, driverEvent.StepId, driverEvent.Attempt, driverEvent.DeliveryCount);
        using var activity = DriverTelemetry.StartReconcile(msg.Headers, Name, driverEvent);
        var started = _timeProvider.GetTimestamp();
        var logger = CreateLogger(driverEvent);
        var context = new DriverContext(Name, driverEvent, logger);
        if (_api is not null)
        {
            context.SecretFetcher = (name, ct) => FetchSecretsAsync(driverEvent, name, ct);
        }

        DriverResult? result = null;
        if (delivery.BeginReconcile(context))
        {
            try
            {
                result = await _driver.ReconcileAsync(driverEvent, context, delivery.Cancellation).ConfigureAwait(false)
                    ?? DriverResult.Fail("The driver returned no result.");
            }
            catch (Exception) when (abort.IsCancellationRequested)
            {
                // Cancelled by shutdown: the work is not done, so another instance must do it.
                if (delivery.TryHandBack())
                {
                    await delivery.StopHeartbeatAsync().ConfigureAwait(false);
                    await NakQuietlyAsync(msg, TimeSpan.Zero).ConfigureAwait(false);
                    LogHandedBack(_logger, Name, msg.Subject);
                }

                return;
            }
            catch (Exception ex) when (delivery.CancellationReason is not null)
            {
                // The engine cancelled the step; an exception is how a reconcile usually reacts to that.
                LogReconcileUnwound(_logger, ex, Name, driverEvent.RunId, driverEvent.StepId);
            }
            catch (Exception ex)
            {
                LogReconcileThrew(_logger, ex, Name, driverEvent.RunId, driverEvent.StepId);
                result = DriverResult.Fail(ex.Message);
            }
        }

        // Past this point a cancel no longer changes the outcome; before it, any cancel decides the outcome.
        if (delivery.EndReconcile() is { } reason)
        {
            LogCancelled(_logger, Name, driverEvent.RunId, driverEvent.StepId, driverEvent.Attempt, reason);
            result = DriverResult.Fail(string.IsNullOrEmpty(reason) ? "cancelled" : "cancelled: " + reason);
        }

        result ??= DriverResult.Fail("The driver returned no result.");
        DriverTelemetry.RecordReconcile(Name, result.Success, _timeProvider.GetElapsedTime(started));
        if (activity is not null)
        {
            activity.SetTag("conveyor.result.success", result.Success);
            if (!result.Success)
            {
                activity.SetStatus(ActivityStatusCode.Error, result.Message);
            }
        }

        // Log lines written through the ILogger adapter go out before the result.
        await logger.FlushAsync().ConfigureAwait(false);

        if (!delivery.TryBeginSettle())
        {
            // Shutdown handed the message back while the reconcile was finishing; its new owner reports the result.
            LogResultDiscarded(_logger, Name, driverEvent.RunId, driverEvent.StepId);
            return;
        }

        try
        {
            await PublishResultAsync(driverEvent.RunId, driverEvent.Resource, result, msg.Headers, driverEvent.StepId, driverEvent.Attempt, abort, activity?.Id).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            LogPublishFailed(_logger, ex, Name, driverEvent.RunId, _options.RetryDelay);
            await delivery.StopHeartbeatAsync().ConfigureAwait(false);
            await NakQuietlyAsync(msg, _options.RetryDelay).ConfigureAwait(false);
            return;
        }

        await delivery.StopHeartbeatAsync().ConfigureAwait(false);
        try
        {
            await msg.AckAsync(cancellationToken: CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // The result is stored; a lost ack means one redelivery, which the engine recognises as a duplicate.
            LogAckFailed(_logger, ex, Name, msg.Subject);
        }

        LogProcessed(_logger, Name, driverEvent.Event, driverEvent.RunId, driverEvent.Resource.Name, driverEvent.StepId, result.Success);
    }
}
