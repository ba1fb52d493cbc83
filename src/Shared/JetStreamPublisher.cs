using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using NATS.Client.Core;

namespace Conveyor.Nats;

/// <summary>What JetStream answered for one published message.</summary>
/// <param name="Sequence">The stream sequence of the stored message (of the original, for a duplicate).</param>
/// <param name="Duplicate">The message id was already stored within the stream's de-duplication window.</param>
internal readonly record struct PublishAck(ulong Sequence, bool Duplicate);

/// <summary>JetStream refused a message, did not answer in time, or no stream listens on its subject.</summary>
/// <param name="message">What happened.</param>
/// <param name="transient">
/// Whether trying again can succeed: no answer, no stream yet (JetStream starting or electing a leader), or a refusal
/// with a 408 or 5xx code; a 4xx refusal (too large, wrong stream) is final.
/// </param>
internal sealed class JetStreamPublishException(string message, bool transient) : Exception(message)
{
    /// <summary>Whether trying again can succeed.</summary>
    public bool Transient { get; } = transient;
}

/// <summary>
/// Publishes to JetStream with any number of acknowledgements in flight over one reply subscription. A JetStream
/// publish is a request: the stream answers the message's reply subject. The client's request path creates, per
/// message, a reply registration, a timeout timer and several async state machines — the NATS client was the largest
/// share (about a fifth) of what the silo allocated per step under load, and the largest of a driver's. Here each
/// message costs a core publish with a reply subject under one shared prefix, a pending entry, and the parse of its
/// answer; one timer fails whatever was not answered within the connection's request timeout (a reconnect loses
/// answers in flight: those fail, and the caller publishes them again — the engine's outboxes under the same message
/// ids, which JetStream de-duplicates; a driver's result with its delivery, which the engine applies once).
/// </summary>
/// <remarks>Shared source of the engine and the driver SDK (neither package depends on the other).</remarks>
internal sealed partial class JetStreamPublisher(INatsConnection connection, TimeProvider time, ILogger<JetStreamPublisher> logger) : IAsyncDisposable
{
    private static readonly TimeSpan SweepInterval = TimeSpan.FromSeconds(1);
    private readonly ConcurrentDictionary<long, Pending> _pending = new();
    private readonly SemaphoreSlim _startLock = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private string? _prefix;
    private long _next;
    private Task? _reader;
    private ITimer? _sweeper;

    /// <summary>Publishes <paramref name="body"/> with <paramref name="headers"/> and answers when JetStream stored it.</summary>
    /// <exception cref="JetStreamPublishException">JetStream refused it, no stream takes the subject, or no answer came in time.</exception>
    public async Task<PublishAck> PublishAsync(string subject, byte[] body, NatsHeaders headers, CancellationToken cancellationToken = default)
    {
        var prefix = _prefix ?? await StartAsync().ConfigureAwait(false);
        var id = Interlocked.Increment(ref _next);
        var pending = new Pending(subject, time.GetUtcNow() + connection.Opts.RequestTimeout);
        _pending[id] = pending;
        try
        {
            await connection.PublishAsync(subject, body, headers, string.Create(CultureInfo.InvariantCulture, $"{prefix}{id}"), cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            _pending.TryRemove(id, out _);
            throw;
        }

        try
        {
            return await pending.Answer.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            _pending.TryRemove(id, out _);
            throw;
        }
    }

    private async Task<string> StartAsync()
    {
        await _startLock.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_prefix is { } started)
            {
                return started;
            }

            // Under the inbox prefix (what a locked-down NATS account allows for replies), but not under the connection's
            // own inbox, whose subscriptions the client matches by exact subject and so would never see a wildcard.
            var prefix = $"{connection.Opts.InboxPrefix}.{Guid.NewGuid():N}.";
            // Subscribed before the first message goes out, so no answer can arrive unheard; NATS re-subscribes it after
            // a reconnect.
            // An answer is never dropped for a full buffer (the client's default for a subscription): a burst of answers
            // waits for this loop, which only completes tasks, instead of failing publishes that JetStream stored.
            var subscription = await connection.SubscribeCoreAsync<byte[]>(
                prefix + "*",
                opts: new NatsSubOpts { ChannelOpts = new NatsSubChannelOpts { FullMode = BoundedChannelFullMode.Wait } },
                cancellationToken: _stop.Token).ConfigureAwait(false);
            _reader = ReadAsync(subscription, prefix.Length);
            _sweeper?.Dispose();
            _sweeper = time.CreateTimer(static s => ((JetStreamPublisher)s!).Sweep(), this, SweepInterval, SweepInterval);
            _prefix = prefix;
            return prefix;
        }
        finally
        {
            _startLock.Release();
        }
    }

    private async Task ReadAsync(INatsSub<byte[]> subscription, int prefixLength)
    {
        await using var _ = subscription;
        try
        {
            await foreach (var msg in subscription.Msgs.ReadAllAsync(_stop.Token).ConfigureAwait(false))
            {
                if (!long.TryParse(msg.Subject.AsSpan(prefixLength), NumberStyles.None, CultureInfo.InvariantCulture, out var id)
                    || !_pending.TryRemove(id, out var pending))
                {
                    // Answered after its timeout (the caller already failed), or not ours.
                    continue;
                }

                if (msg.HasNoResponders)
                {
                    pending.Answer.TrySetException(new JetStreamPublishException($"no JetStream stream takes subject {pending.Subject}", transient: true));
                }
                else
                {
                    Complete(pending, msg.Data);
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            // The next publish subscribes again under a new prefix.
            _prefix = null;
            LogReaderFailed(logger, ex);
        }
        finally
        {
            FailAll("the publisher stopped");
        }
    }

    /// <summary>Completes <paramref name="pending"/> from a JetStream publish answer: <c>{"stream":…,"seq":N,"duplicate":true}</c> or <c>{"error":{…}}</c>.</summary>
    private static void Complete(Pending pending, byte[]? data)
    {
        if (TryParseAck(data, out var ack, out var error, out var code))
        {
            pending.Answer.TrySetResult(ack);
        }
        else
        {
            pending.Answer.TrySetException(new JetStreamPublishException($"JetStream refused a message on {pending.Subject}: {error}", code is 0 or 408 or >= 500));
        }
    }

    /// <summary>Reads a publish answer; false with the server's description (and its HTTP-like code, 0 when none) when it is an error or unreadable.</summary>
    internal static bool TryParseAck(ReadOnlySpan<byte> data, out PublishAck ack, out string error, out int code)
    {
        ack = default;
        code = 0;
        error = "an empty answer";
        if (data.IsEmpty)
        {
            return false;
        }

        ulong sequence = 0;
        var duplicate = false;
        var sawSequence = false;
        try
        {
            var reader = new Utf8JsonReader(data);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                error = "an answer that is not a JSON object";
                return false;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("seq"u8))
                {
                    reader.Read();
                    sawSequence = reader.TryGetUInt64(out sequence);
                }
                else if (reader.ValueTextEquals("duplicate"u8))
                {
                    reader.Read();
                    duplicate = reader.TokenType == JsonTokenType.True;
                }
                else if (reader.ValueTextEquals("error"u8))
                {
                    reader.Read();
                    error = ReadError(ref reader, out code);
                    return false;
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }
        }
        catch (JsonException ex)
        {
            error = "an unreadable answer: " + ex.Message;
            return false;
        }

        if (!sawSequence)
        {
            error = "an answer without a sequence";
            return false;
        }

        ack = new PublishAck(sequence, duplicate);
        return true;
    }

    private static string ReadError(ref Utf8JsonReader reader, out int status)
    {
        status = 0;
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            return "an error without a description";
        }

        string? description = null;
        var code = 0;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("description"u8))
            {
                reader.Read();
                description = reader.GetString();
            }
            else if (reader.ValueTextEquals("err_code"u8))
            {
                reader.Read();
                reader.TryGetInt32(out code);
            }
            else if (reader.ValueTextEquals("code"u8))
            {
                reader.Read();
                reader.TryGetInt32(out status);
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        return code == 0 ? description ?? "an error without a description" : $"{description} (err_code {code})";
    }

    /// <summary>Fails every message whose answer is overdue.</summary>
    private void Sweep()
    {
        var now = time.GetUtcNow();
        foreach (var (id, pending) in _pending)
        {
            if (pending.Deadline <= now && _pending.TryRemove(id, out _))
            {
                pending.Answer.TrySetException(new JetStreamPublishException($"JetStream did not answer a message on {pending.Subject} within {connection.Opts.RequestTimeout.TotalSeconds:0.#} s", transient: true));
            }
        }
    }

    private void FailAll(string why)
    {
        foreach (var id in _pending.Keys)
        {
            if (_pending.TryRemove(id, out var pending))
            {
                pending.Answer.TrySetException(new JetStreamPublishException($"no answer for a message on {pending.Subject}: {why}", transient: true));
            }
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        if (_sweeper is not null)
        {
            await _sweeper.DisposeAsync().ConfigureAwait(false);
        }

        if (_reader is not null)
        {
            try
            {
                await _reader.ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is NatsException or ObjectDisposedException)
            {
                // The connection went first (host shutdown): its subscriptions went with it.
            }
        }

        FailAll("the publisher stopped");
        _stop.Dispose();
        _startLock.Dispose();
    }

    private sealed class Pending(string subject, DateTimeOffset deadline)
    {
        public string Subject { get; } = subject;

        public DateTimeOffset Deadline { get; } = deadline;

        // Continuations run off the reader loop: one slow caller never holds up the answers of the others.
        public TaskCompletionSource<PublishAck> Answer { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "JetStream publish answers can no longer be read; publishes in flight fail and are retried by their outboxes")]
    private static partial void LogReaderFailed(ILogger logger, Exception exception);
}
