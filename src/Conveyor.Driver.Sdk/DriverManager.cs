using System.Collections.Concurrent;
using System.Collections.ObjectModel;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Conveyor.Client;
using Conveyor.Contracts;
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

    private async Task HandleMalformedAsync(Delivery delivery, string? runId, string error, CancellationToken abort)
    {
        var msg = delivery.Message;
        LogMalformed(_logger, Name, msg.Subject, runId, error);
        if (!delivery.TryBeginSettle())
        {
            return;
        }

        if (!string.IsNullOrEmpty(runId))
        {
            try
            {
                await PublishResultAsync(runId, null, DriverResult.Fail("Malformed driver message: " + error), msg.Headers, stepId: null, attempt: null, abort).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                LogPublishFailed(_logger, ex, Name, runId, _options.RetryDelay);
                await delivery.StopHeartbeatAsync().ConfigureAwait(false);
                await NakQuietlyAsync(msg, _options.RetryDelay).ConfigureAwait(false);
                return;
            }
        }

        await delivery.StopHeartbeatAsync().ConfigureAwait(false);
        try
        {
            // Terminate: a message that cannot be decoded now never will be; redelivering it would loop forever.
            await msg.AckTerminateAsync(cancellationToken: CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            LogAckFailed(_logger, ex, Name, msg.Subject);
        }
    }

    /// <summary>
    /// Publishes a result with the incoming message's echoed headers; <paramref name="stepId"/> and
    /// <paramref name="attempt"/>, when known from the message body, replace the step headers so the engine can match
    /// the result even when the dispatch carried them only in JSON.
    /// </summary>
    private async Task PublishResultAsync(
        string runId, Resource? resource, DriverResult result, NatsHeaders? incoming, string? stepId, int? attempt, CancellationToken cancellationToken, string? traceParent = null)
    {
        var pipelineEvent = new PipelineEvent
        {
            Event = EventNames.DriverResult,
            RunId = runId,
            Resource = resource,
            DriverResult = new DriverResultEvent
            {
                Success = result.Success,
                Message = result.Message ?? "",
                Data = result.Data,
                Driver = Name,
            },
        };
        var body = JsonSerializer.SerializeToUtf8Bytes(pipelineEvent, ConveyorJson.Context.PipelineEvent);

        var headers = new NatsHeaders();
        if (!string.IsNullOrEmpty(runId))
        {
            headers[Headers.RunId] = runId;
        }

        foreach (var name in EchoedHeaders)
        {
            if (Header(incoming, name) is { } value)
            {
                headers[name] = value;
            }
        }

        if (!string.IsNullOrEmpty(stepId))
        {
            headers[Headers.StepId] = stepId;
        }

        if (attempt is { } number)
        {
            headers[Headers.Attempt] = number.ToString(CultureInfo.InvariantCulture);
        }

        if (traceParent is not null)
        {
            // The engine's handling of the result continues from the reconcile, not from the dispatch.
            headers[Headers.TraceParent] = traceParent;
        }

        var ack = await _jetStream.PublishAsync(
            Subjects.DriverResult,
            body,
            headers: headers.Count > 0 ? headers : null,
            cancellationToken: cancellationToken).ConfigureAwait(false);
        ack.EnsureSuccess();
    }

    private DriverLogger CreateLogger(DriverEvent driverEvent)
    {
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        if (driverEvent.StepId is { } step)
        {
            labels["step"] = step;
        }

        if (driverEvent.Attempt is { } attempt)
        {
            labels["attempt"] = attempt.ToString(CultureInfo.InvariantCulture);
        }

        return new DriverLogger(_connection, _jetStream, _timeProvider, driverEvent.RunId, Name, driverEvent.Resource.Pipeline ?? "", labels, _logger);
    }

    /// <summary>
    /// Decodes a message. <see cref="DriverMessage.Step"/> and <see cref="DriverMessage.Attempt"/> win over the
    /// <c>Conveyor-Step-Id</c>/<c>Conveyor-Attempt</c> headers; messages of the original engine have neither field.
    /// </summary>
    private static Decoded Decode(INatsJSMsg<byte[]> msg)
    {
        var runId = Header(msg.Headers, Headers.RunId);
        var data = msg.Data ?? [];
        DriverMessage? message;
        try
        {
            message = JsonSerializer.Deserialize(data, ConveyorJson.Context.DriverMessage);
        }
        catch (JsonException ex)
        {
            return new Decoded(null, runId ?? ScanRunId(data), "the message is not a driver message: " + ex.Message);
        }

        if (message is null)
        {
            return new Decoded(null, runId, "the message is empty");
        }

        if (!string.IsNullOrEmpty(message.RunId))
        {
            runId = message.RunId;
        }

        Resource resource;
        try
        {
            resource = ConveyorJson.DeserializeResource(message.Payload);
        }
        catch (JsonException ex)
        {
            return new Decoded(null, runId, "the payload is not a resource: " + ex.Message);
        }

        var driverEvent = new DriverEvent
        {
            Event = message.Event,
            RunId = runId ?? "",
            MessageId = message.Id,
            Payload = message.Payload,
            Resource = resource,
            Subject = msg.Subject,
            StepId = string.IsNullOrEmpty(message.Step) ? Header(msg.Headers, Headers.StepId) : message.Step,
            Attempt = message.Attempt
                ?? (int.TryParse(Header(msg.Headers, Headers.Attempt), NumberStyles.None, CultureInfo.InvariantCulture, out var attempt) ? attempt : null),
            Params = message.Params,
            StepToken = message.StepToken,
            Variables = message.Variables is { Count: > 0 } variables
                ? new ReadOnlyDictionary<string, string>(new Dictionary<string, string>(variables, StringComparer.Ordinal))
                : ReadOnlyDictionary<string, string>.Empty,
            Inputs = message.Inputs is { Count: > 0 } inputs
                ? new ReadOnlyDictionary<string, JsonElement>(new Dictionary<string, JsonElement>(inputs, StringComparer.Ordinal))
                : ReadOnlyDictionary<string, JsonElement>.Empty,
            DeliveryCount = msg.Metadata is { } metadata ? (int)Math.Min(metadata.NumDelivered, int.MaxValue) : 1,
        };
        return new Decoded(driverEvent, runId, "");
    }

    /// <summary>Reads a top-level <c>run_id</c> string from JSON that may be broken after it.</summary>
    internal static string? ScanRunId(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        try
        {
            while (reader.Read())
            {
                if (reader.TokenType == JsonTokenType.PropertyName && reader.CurrentDepth == 1
                    && string.Equals(reader.GetString(), "run_id", StringComparison.OrdinalIgnoreCase))
                {
                    if (reader.Read() && reader.TokenType == JsonTokenType.String)
                    {
                        var value = reader.GetString();
                        return string.IsNullOrEmpty(value) ? null : value;
                    }
                }
            }
        }
        catch (JsonException)
        {
            // Broken JSON: whatever was found before the break is all there is.
        }

        return null;
    }

    private static string? Header(NatsHeaders? headers, string name) =>
        headers is not null && headers.TryGetValue(name, out var values) && values.Count > 0 && !string.IsNullOrEmpty(values[0]) ? values[0] : null;

    /// <summary>Reads cancel messages until the subscription ends, and cancels every in-flight message they match.</summary>
    private async Task CancelLoopAsync(INatsSub<byte[]> subscription)
    {
        await foreach (var msg in subscription.Msgs.ReadAllAsync().ConfigureAwait(false))
        {
            try
            {
                HandleCancel(msg.Data ?? []);
            }
            catch (Exception ex)
            {
                LogUnexpected(_logger, ex, Name, msg.Subject);
            }
        }
    }

    private void HandleCancel(byte[] data)
    {
        CancelMessage? cancel;
        try
        {
            cancel = JsonSerializer.Deserialize(data, ConveyorJson.Context.CancelMessage);
        }
        catch (JsonException ex)
        {
            LogCancelMalformed(_logger, ex, Name, ex.Message);
            return;
        }

        if (cancel is null || string.IsNullOrEmpty(cancel.RunId))
        {
            LogCancelMalformed(_logger, null, Name, "no run_id");
            return;
        }

        var matched = 0;
        foreach (var delivery in _inFlight.Keys)
        {
            if (delivery.Matches(cancel) && delivery.TryCancel(cancel.Reason))
            {
                matched++;
            }
        }

        if (matched == 0)
        {
            LogCancelIgnored(_logger, Name, cancel.RunId, cancel.Step, cancel.Attempt);
        }
    }

    private async Task StopCancelSubscriptionAsync(Task cancelLoop)
    {
        if (Interlocked.Exchange(ref _cancelSubscription, null) is not { } subscription)
        {
            return;
        }

        try
        {
            await subscription.UnsubscribeAsync().ConfigureAwait(false);
            await cancelLoop.ConfigureAwait(false);
            await subscription.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // The connection closes right after; the server drops the subscription with it.
            LogUnsubscribeFailed(_logger, ex, Name);
        }
    }

    /// <summary>Sends progress acknowledgements until the delivery's heartbeat timer is disposed.</summary>
    private async Task HeartbeatAsync(Delivery delivery, PeriodicTimer timer)
    {
        while (await timer.WaitForNextTickAsync().ConfigureAwait(false))
        {
            try
            {
                await delivery.Message.AckProgressAsync(cancellationToken: CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                LogHeartbeatFailed(_logger, ex, Name, delivery.Message.Subject);
            }
        }
    }

    private async Task DrainAsync(TimeSpan remainingGrace, CancellationTokenSource abort)
    {
        var pending = _inFlight.Keys.Select(d => d.Done.Task).ToArray();
        if (pending.Length == 0)
        {
            return;
        }

        LogDraining(_logger, Name, pending.Length, _options.ShutdownGracePeriod);
        if (await CompletesWithinAsync(Task.WhenAll(pending), Max(remainingGrace, TimeSpan.Zero)).ConfigureAwait(false))
        {
            return;
        }

        await abort.CancelAsync().ConfigureAwait(false);
        foreach (var delivery in _inFlight.Keys)
        {
            if (delivery.TryHandBack())
            {
                await delivery.StopHeartbeatAsync().ConfigureAwait(false);
                await NakQuietlyAsync(delivery.Message, TimeSpan.Zero).ConfigureAwait(false);
                LogHandedBack(_logger, Name, delivery.Message.Subject);
            }
        }

        // Give cancelled reconciles a moment to unwind; one that ignores its token is left behind.
        var unwind = Min(Max(_options.ShutdownGracePeriod, TimeSpan.FromSeconds(1)), MaxBackoff);
        if (!await CompletesWithinAsync(Task.WhenAll(pending), unwind).ConfigureAwait(false))
        {
            LogAbandoned(_logger, Name, _inFlight.Count);
        }
    }

    private async Task<bool> CompletesWithinAsync(Task task, TimeSpan timeout)
    {
        try
        {
            await task.WaitAsync(timeout, _timeProvider).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    private async Task NakQuietlyAsync(INatsJSMsg<byte[]> msg, TimeSpan delay)
    {
        try
        {
            await msg.NakAsync(delay > TimeSpan.Zero ? new AckOpts { NakDelay = delay } : null, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // Without the nak the server redelivers after AckWait anyway.
            LogAckFailed(_logger, ex, Name, msg.Subject);
        }
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    /// <summary>A message decoded: the event, or the run id (when readable) and the error.</summary>
    private sealed record Decoded(DriverEvent? Event, string? RunId, string Error);

    /// <summary>One message taken from JetStream, from pull to settlement.</summary>
    private sealed class Delivery : IDisposable
    {
        private const int Open = 0;
        private const int Settling = 1;
        private const int HandedBack = 2;

        private readonly PeriodicTimer _heartbeatTimer;
        private readonly Task _heartbeat;
        private readonly CancellationTokenSource _cancellation;
        private readonly Lock _cancelGate = new();
        private DriverContext? _context;
        private string? _cancellationReason;
        private bool _reconciled;
        private int _state;

        public Delivery(INatsJSMsg<byte[]> message, Decoded decoded, TimeSpan heartbeatInterval, TimeProvider timeProvider, Func<Delivery, PeriodicTimer, Task> heartbeat, CancellationToken abort)
        {
            Message = message;
            Decoded = decoded;
            _cancellation = CancellationTokenSource.CreateLinkedTokenSource(abort);
            _heartbeatTimer = new PeriodicTimer(heartbeatInterval, timeProvider);
            _heartbeat = heartbeat(this, _heartbeatTimer);
        }

        public INatsJSMsg<byte[]> Message { get; }

        public Decoded Decoded { get; }

        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>The reconcile's token: cancelled by shutdown (after the grace period) or by the engine.</summary>
        public CancellationToken Cancellation => _cancellation.Token;

        /// <summary>The engine's cancel reason, once a cancel has matched.</summary>
        public string? CancellationReason
        {
            get
            {
                lock (_cancelGate)
                {
                    return _cancellationReason;
                }
            }
        }

        /// <summary>Whether a cancel message is about this delivery.</summary>
        public bool Matches(CancelMessage cancel) =>
            Decoded.Event is { } e
            && string.Equals(e.RunId, cancel.RunId, StringComparison.Ordinal)
            && (e.StepId is null || string.Equals(e.StepId, cancel.Step, StringComparison.Ordinal))
            && (e.Attempt is null || cancel.Attempt <= 0 || e.Attempt == cancel.Attempt);

        /// <summary>
        /// Records the engine's cancel (the first one wins) and cancels the reconcile's token; false when already
        /// cancelled or the reconcile has already produced its result.
        /// </summary>
        public bool TryCancel(string reason)
        {
            lock (_cancelGate)
            {
                if (_reconciled || _cancellationReason is not null)
                {
                    return false;
                }

                _cancellationReason = reason ?? "";
                // The reason is visible before the token fires, so a reconcile that sees the token sees the reason.
                _context?.SetCancellationReason(_cancellationReason);
            }

            try
            {
                // Token callbacks (the driver's code) run on the thread pool, not on the loop reading cancels.
                _ = _cancellation.CancelAsync();
            }
            catch (ObjectDisposedException)
            {
                // Settled and disposed in the meantime.
            }

            return true;
        }

        /// <summary>Binds the reconcile's context; false when the engine cancelled the message before it started.</summary>
        public bool BeginReconcile(DriverContext context)
        {
            lock (_cancelGate)
            {
                _context = context;
                if (_cancellationReason is { } reason)
                {
                    context.SetCancellationReason(reason);
                    return false;
                }

                return true;
            }
        }

        /// <summary>Closes the window in which a cancel changes the outcome; returns the cancel reason, if any.</summary>
        public string? EndReconcile()
        {
            lock (_cancelGate)
            {
                _reconciled = true;
                return _cancellationReason;
            }
        }

        /// <summary>Claims the right to publish the result and ack; fails if shutdown handed the message back.</summary>
        public bool TryBeginSettle() => Interlocked.CompareExchange(ref _state, Settling, Open) == Open;

        /// <summary>Claims the right to nak the message for another instance; fails if the result is being settled.</summary>
        public bool TryHandBack() => Interlocked.CompareExchange(ref _state, HandedBack, Open) == Open;

        /// <summary>Stops the progress heartbeats (idempotent, thread-safe) and waits for one in flight.</summary>
        public async Task StopHeartbeatAsync()
        {
            _heartbeatTimer.Dispose();
            await _heartbeat.ConfigureAwait(false);
        }

        public void Dispose()
        {
            _heartbeatTimer.Dispose();
            _cancellation.Dispose();
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Driver {Driver} starting for resources {Resources} ({Options})")]
    private static partial void LogStarting(ILogger logger, string driver, IReadOnlyList<string> resources, DriverOptions options);

    [LoggerMessage(Level = LogLevel.Information, Message = "Driver {Driver} ready on consumers {Consumers}")]
    private static partial void LogReady(ILogger logger, string driver, IReadOnlyList<string> consumers);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Driver {Driver} could not set up its consumers; retrying in {Delay}")]
    private static partial void LogSetupFailed(ILogger logger, Exception exception, string driver, TimeSpan delay);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Pulling from consumer {Consumer} failed; retrying in {Delay}")]
    private static partial void LogPullFailed(ILogger logger, Exception exception, string consumer, TimeSpan delay);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Driver {Driver} reconciling {Event} of run {RunId}, resource {Resource}, step {Step}, attempt {Attempt}, delivery {DeliveryCount}")]
    private static partial void LogReconciling(ILogger logger, string driver, string @event, string runId, string resource, string? step, int? attempt, int deliveryCount);

    [LoggerMessage(Level = LogLevel.Information, Message = "Driver {Driver} processed {Event} of run {RunId}, resource {Resource}, step {Step}: success={Success}")]
    private static partial void LogProcessed(ILogger logger, string driver, string @event, string runId, string resource, string? step, bool success);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Driver {Driver} reconcile of run {RunId} step {Step} threw; reporting a failure")]
    private static partial void LogReconcileThrew(ILogger logger, Exception exception, string driver, string runId, string? step);

    [LoggerMessage(Level = LogLevel.Information, Message = "Driver {Driver} reconcile of run {RunId} step {Step} attempt {Attempt} was cancelled by the engine: {Reason}")]
    private static partial void LogCancelled(ILogger logger, string driver, string runId, string? step, int? attempt, string reason);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Driver {Driver} reconcile of run {RunId} step {Step} threw after the engine cancelled it")]
    private static partial void LogReconcileUnwound(ILogger logger, Exception exception, string driver, string runId, string? step);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Driver {Driver} ignored a cancel for run {RunId} step {Step} attempt {Attempt}: nothing of it is in flight here")]
    private static partial void LogCancelIgnored(ILogger logger, string driver, string runId, string step, int attempt);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Driver {Driver} ignored a malformed cancel message: {Error}")]
    private static partial void LogCancelMalformed(ILogger logger, Exception? exception, string driver, string error);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Driver {Driver} could not unsubscribe from cancel messages")]
    private static partial void LogUnsubscribeFailed(ILogger logger, Exception exception, string driver);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Driver {Driver} dropped a malformed message on {Subject} (run {RunId}): {Error}")]
    private static partial void LogMalformed(ILogger logger, string driver, string subject, string? runId, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Driver {Driver} could not publish the result of run {RunId}; the message comes back in {RetryDelay}")]
    private static partial void LogPublishFailed(ILogger logger, Exception exception, string driver, string runId, TimeSpan retryDelay);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Driver {Driver} could not acknowledge a message on {Subject}")]
    private static partial void LogAckFailed(ILogger logger, Exception exception, string driver, string subject);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Driver {Driver} could not send a progress heartbeat for a message on {Subject}")]
    private static partial void LogHeartbeatFailed(ILogger logger, Exception exception, string driver, string subject);

    [LoggerMessage(Level = LogLevel.Error, Message = "Driver {Driver} failed unexpectedly handling a message on {Subject}")]
    private static partial void LogUnexpected(ILogger logger, Exception exception, string driver, string subject);

    [LoggerMessage(Level = LogLevel.Information, Message = "Driver {Driver} handed a message on {Subject} back to JetStream")]
    private static partial void LogHandedBack(ILogger logger, string driver, string subject);

    [LoggerMessage(Level = LogLevel.Information, Message = "Driver {Driver} discarded the result of run {RunId} step {Step}: the message was handed back at shutdown")]
    private static partial void LogResultDiscarded(ILogger logger, string driver, string runId, string? step);

    [LoggerMessage(Level = LogLevel.Information, Message = "Driver {Driver} stopping; waiting up to {GracePeriod} for {Count} in-flight messages")]
    private static partial void LogDraining(ILogger logger, string driver, int count, TimeSpan gracePeriod);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Driver {Driver} stopped with {Count} reconciles that ignored cancellation still running")]
    private static partial void LogAbandoned(ILogger logger, string driver, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Driver {Driver} could not confirm that its last acknowledgements reached the server")]
    private static partial void LogFlushFailed(ILogger logger, Exception exception, string driver);

    [LoggerMessage(Level = LogLevel.Information, Message = "Driver {Driver} stopped")]
    private static partial void LogStopped(ILogger logger, string driver);
}
