using System.Text.Json;
using Conveyor.Contracts;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Conveyor.Driver.Sdk;

/// <content>Cancel messages from the engine, progress heartbeats, and the drain at shutdown.</content>
public sealed partial class DriverManager
{
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
}
