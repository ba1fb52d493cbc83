using System.Globalization;
using System.Text.Json;
using Conveyor.Contracts;
using Conveyor.Grains.Resilience;
using Conveyor.Nats;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Conveyor.Grains.Nats;

/// <summary>Outcome of a dispatch.</summary>
internal enum DispatchOutcome
{
    /// <summary>JetStream stored the message (or recognised it as a duplicate of one it stored).</summary>
    Published = 0,

    /// <summary>
    /// No consumer on the <c>messages</c> stream matches the subject, so the Interest-retention stream would drop the
    /// message; nothing was published.
    /// </summary>
    NoConsumer = 1,

    /// <summary>
    /// The message is larger than the NATS server accepts (its <c>max_payload</c>): it can never be published as it is;
    /// <see cref="DispatchResult.Error"/> says so.
    /// </summary>
    TooLarge = 2,
}

/// <summary>What became of a dispatch, and the message's stream sequence when it was stored.</summary>
/// <param name="Outcome">Published, or no consumer.</param>
/// <param name="Sequence">JetStream stream sequence of the stored message (0 when not published).</param>
internal readonly record struct DispatchResult(DispatchOutcome Outcome, ulong Sequence)
{
    /// <summary>Why the message cannot be published (<see cref="DispatchOutcome.TooLarge"/>); null otherwise.</summary>
    public string? Error { get; init; }
}

/// <summary>One attempt of a pipeline step on its way to its driver.</summary>
/// <param name="RunId">The run.</param>
/// <param name="Step">The step's id.</param>
/// <param name="Attempt">The attempt number.</param>
/// <param name="Driver">The step's driver.</param>
/// <param name="ResourceType">The run's resource type (with the driver, it names the subject).</param>
/// <param name="Message">The message, built (step token included) by the run.</param>
internal sealed record StepDispatch(Guid RunId, string Step, int Attempt, string Driver, string ResourceType, DriverMessage Message)
{
    /// <summary>The W3C <c>traceparent</c> the driver continues, or null.</summary>
    public string? TraceParent { get; init; }

    /// <summary>The subject the step's driver consumes: <c>drivers.{driver}.resources.{type}</c>.</summary>
    public string Subject => Subjects.DriverResources(Driver, ResourceType);
}

/// <summary>
/// Publishes driver messages to JetStream. Before publishing a pipeline step it checks that some consumer of the
/// <c>messages</c> stream matches the subject: that stream has Interest retention, so a message nobody listens for is
/// discarded at once, which is how the original loses steps silently. Transient NATS faults (a restart, JetStream
/// not ready yet) are retried a few times with jittered backoff before the caller sees them.
/// </summary>
internal sealed partial class DriverDispatcher(
    INatsConnection connection,
    JetStreamPublisher publisher,
    IOptions<ConveyorNatsOptions> options,
    TimeProvider timeProvider,
    TransientFaults faults,
    ILogger<DriverDispatcher> logger) : IDisposable
{
    private static readonly TimeSpan MissRefreshInterval = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan HitLifetime = TimeSpan.FromSeconds(5);

    // Room left for the headers (run, step, attempt, traceparent, message id) within the server's max_payload.
    private const int HeaderAllowance = 1024;

    private readonly NatsJSContext _js = new(connection);
    private readonly OpenCounter _opens = new(connection);
    private readonly SemaphoreSlim _refreshLock = new(1, 1);
    private volatile ConsumerSnapshot _consumers = new([], DateTimeOffset.MinValue);
    private int _backgroundRefresh;

    /// <summary>The JetStream context used for publishing.</summary>
    public INatsJSContext JetStream => _js;

    /// <summary>
    /// How many times the connection has (re)opened since this dispatcher was created. A change tells a run that NATS
    /// went away in between, and a restarted server may have lost its last writes.
    /// </summary>
    public long ConnectionEpoch => _opens.Count;

    /// <summary>Options in force.</summary>
    public ConveyorNatsOptions Options { get; } = options.Value;

    /// <summary>
    /// Publishes one attempt of a pipeline step to its driver: subject, headers and JetStream de-duplication id
    /// (<c>{run}:{step}:{attempt}</c>) come from the dispatch. When no consumer listens for the subject, returns
    /// <see cref="DispatchOutcome.NoConsumer"/> without publishing (the <c>messages</c> stream would drop it).
    /// </summary>
    public Task<DispatchResult> DispatchStepAsync(StepDispatch dispatch, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(dispatch);
        var runId = dispatch.RunId.ToString();
        var headers = new NatsHeaders
        {
            [Headers.RunId] = runId,
            [Headers.StepId] = dispatch.Step,
            [Headers.Attempt] = dispatch.Attempt.ToString(CultureInfo.InvariantCulture),
        };
        if (dispatch.TraceParent is { } traceParent)
        {
            headers[Headers.TraceParent] = traceParent;
        }

        return DispatchAsync(dispatch.Subject, dispatch.Message, MessageIds.DedupKey(runId, dispatch.Step, dispatch.Attempt), headers, requireConsumer: true, cancellationToken);
    }

    /// <summary>
    /// Publishes <paramref name="message"/> on <paramref name="subject"/> with JetStream de-duplication id
    /// <paramref name="dedupId"/>. When <paramref name="requireConsumer"/> is set and no consumer listens for the
    /// subject, returns <see cref="DispatchOutcome.NoConsumer"/> without publishing.
    /// </summary>
    public async Task<DispatchResult> DispatchAsync(
        string subject,
        DriverMessage message,
        string dedupId,
        NatsHeaders? headers,
        bool requireConsumer,
        CancellationToken cancellationToken = default)
    {
        if (requireConsumer
            && !await faults.Nats.ExecuteAsync(
                static (s, ct) => s.Self.HasConsumerForAsync(s.Subject, ct),
                (Self: this, Subject: subject),
                cancellationToken).ConfigureAwait(false))
        {
            return new DispatchResult(DispatchOutcome.NoConsumer, 0);
        }

        var body = JsonSerializer.SerializeToUtf8Bytes(message, ConveyorJson.Context.DriverMessage);
        // The server would refuse it (and the client throws before sending); retrying cannot help, so it is said at once.
        if (connection.ServerInfo?.MaxPayload is > 0 and var max && body.Length + HeaderAllowance > max)
        {
            return new DispatchResult(DispatchOutcome.TooLarge, 0)
            {
                Error = $"the message to the driver on {subject} is {body.Length} bytes, more than the NATS server accepts ({max} bytes, its max_payload): make the resource spec, step params or the inputs from earlier steps smaller",
            };
        }
        // Retrying a publish is safe: the Nats-Msg-Id makes JetStream store it once whatever happened to the first try.
        headers ??= [];
        headers[Headers.MessageId] = dedupId;
        var ack = await faults.Nats.ExecuteAsync(
            static (s, ct) => new ValueTask<PublishAck>(s.Publisher.PublishAsync(s.Subject, s.Body, s.Headers, ct)),
            (Publisher: publisher, Subject: subject, Body: body, Headers: headers),
            cancellationToken).ConfigureAwait(false);
        if (ack.Duplicate)
        {
            // A re-publish after a crash: JetStream already stored this dispatch, which is what the caller wants.
            LogDuplicate(logger, subject, dedupId);
        }

        return new DispatchResult(DispatchOutcome.Published, ack.Sequence);
    }

    /// <summary>Asks a driver to stop working on a step (core NATS, best effort).</summary>
    public async Task SendCancelAsync(CancelMessage cancel, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(cancel);
        var body = JsonSerializer.SerializeToUtf8Bytes(cancel, ConveyorJson.Context.CancelMessage);
        await connection.PublishAsync(
            Subjects.Cancel(cancel.Driver),
            body,
            headers: new NatsHeaders
            {
                [Headers.RunId] = cancel.RunId,
                [Headers.StepId] = cancel.Step,
                [Headers.Attempt] = cancel.Attempt.ToString(CultureInfo.InvariantCulture),
            },
            cancellationToken: cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Whether some consumer of the <c>messages</c> stream has a filter matching <paramref name="subject"/>.</summary>
    public async ValueTask<bool> HasConsumerForAsync(string subject, CancellationToken cancellationToken = default)
    {
        var now = timeProvider.GetUtcNow();
        var snapshot = _consumers;
        var matches = snapshot.Matches(subject);
        if (matches)
        {
            if (now - snapshot.TakenAt >= HitLifetime)
            {
                // A known consumer is trusted a little longer while the list is re-read in the background: waiting for
                // the re-read made one dispatch in every few hundred pay a JetStream API round trip (and everything
                // behind the lock with it).
                _ = RefreshInBackgroundAsync();
            }

            return true;
        }

        if (now - snapshot.TakenAt < MissRefreshInterval)
        {
            return false;
        }

        await RefreshAsync(cancellationToken).ConfigureAwait(false);
        return _consumers.Matches(subject);
    }

    private async Task RefreshInBackgroundAsync()
    {
        if (Interlocked.Exchange(ref _backgroundRefresh, 1) == 1)
        {
            return;
        }

        try
        {
            await faults.Nats.ExecuteAsync(static (self, ct) => new ValueTask(self.RefreshAsync(ct)), this).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The snapshot stays as it was; the next dispatch tries again.
            LogRefreshFailed(logger, ex);
        }
        finally
        {
            Volatile.Write(ref _backgroundRefresh, 0);
        }
    }

    /// <summary>Re-reads the consumers of the <c>messages</c> stream, unless another caller just did.</summary>
    private async Task RefreshAsync(CancellationToken cancellationToken)
    {
        await _refreshLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // Another caller may have refreshed while this one waited.
            if (timeProvider.GetUtcNow() - _consumers.TakenAt >= MissRefreshInterval)
            {
                var filters = new List<string>();
                await foreach (var consumer in _js.ListConsumersAsync(Subjects.MessagesStream, cancellationToken).ConfigureAwait(false))
                {
                    var config = consumer.Info.Config;
                    if (!string.IsNullOrEmpty(config.FilterSubject))
                    {
                        filters.Add(config.FilterSubject);
                    }

                    if (config.FilterSubjects is { } many)
                    {
                        filters.AddRange(many);
                    }

                    if (string.IsNullOrEmpty(config.FilterSubject) && config.FilterSubjects is not { Count: > 0 })
                    {
                        // A consumer without filter takes every subject of the stream.
                        filters.Add(">");
                    }
                }

                _consumers = new ConsumerSnapshot(filters, timeProvider.GetUtcNow());
            }
        }
        finally
        {
            _refreshLock.Release();
        }
    }

    /// <inheritdoc />
    public void Dispose() => _refreshLock.Dispose();

    private sealed class OpenCounter
    {
        private long _count;

        public OpenCounter(INatsConnection connection) =>
            connection.ConnectionOpened += (_, _) =>
            {
                Interlocked.Increment(ref _count);
                return default;
            };

        public long Count => Interlocked.Read(ref _count);
    }

    private sealed record ConsumerSnapshot(List<string> Filters, DateTimeOffset TakenAt)
    {
        public bool Matches(string subject)
        {
            foreach (var filter in Filters)
            {
                if (Subjects.FilterMatches(filter, subject))
                {
                    return true;
                }
            }

            return false;
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Re-reading the consumers of the messages stream failed; the previous list stays in use")]
    private static partial void LogRefreshFailed(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Debug, Message = "JetStream de-duplicated re-published message {MessageId} on {Subject}")]
    private static partial void LogDuplicate(ILogger logger, string subject, string messageId);
}
