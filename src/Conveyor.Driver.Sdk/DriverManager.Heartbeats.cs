using System.Text.Json;
using Conveyor.Contracts;
using Microsoft.Extensions.Logging;

namespace Conveyor.Driver.Sdk;

/// <summary>
/// Heartbeats to the engine: the progress acknowledgements keep JetStream from redelivering a held message, but the
/// engine never sees those, so once per heartbeat interval the manager also tells the engine (core NATS
/// <c>conveyor.heartbeat.{driver}</c>, one message for all its pipeline steps in progress) which attempts it is working
/// on. The engine then keeps them alive for a lease instead of cutting them at its default attempt timeout.
/// </summary>
public sealed partial class DriverManager
{
    // Far below any server's max payload; a driver with more steps in flight sends several messages.
    private const int MaxAttemptsPerHeartbeat = 500;

    /// <summary>How often the engine hears from this driver about its steps in progress (a third of the ack wait, as the progress acks).</summary>
    private TimeSpan EngineHeartbeatInterval => _options.AckWait / 3;

    /// <summary>Sends the engine a heartbeat every interval until <paramref name="stop"/> is cancelled.</summary>
    private async Task EngineHeartbeatLoopAsync(CancellationToken stop)
    {
        using var timer = new PeriodicTimer(EngineHeartbeatInterval, _timeProvider);
        try
        {
            while (await timer.WaitForNextTickAsync(stop).ConfigureAwait(false))
            {
                await SendEngineHeartbeatAsync(stop).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // Stopping.
        }
    }

    /// <summary>One heartbeat: every pipeline step this instance holds (reconciling, or waiting for a slot).</summary>
    private async Task SendEngineHeartbeatAsync(CancellationToken cancellationToken)
    {
        var attempts = new List<HeartbeatAttempt>();
        foreach (var delivery in _inFlight.Keys)
        {
            if (delivery.Decoded.Event is { StepId: { } step, Attempt: { } attempt } driverEvent)
            {
                attempts.Add(new HeartbeatAttempt { RunId = driverEvent.RunId, Step = step, Attempt = attempt });
            }
        }

        for (var i = 0; i < attempts.Count; i += MaxAttemptsPerHeartbeat)
        {
            var heartbeat = new HeartbeatMessage
            {
                Driver = Name,
                IntervalMs = (long)EngineHeartbeatInterval.TotalMilliseconds,
                Attempts = attempts.GetRange(i, Math.Min(MaxAttemptsPerHeartbeat, attempts.Count - i)),
            };
            try
            {
                await _connection.PublishAsync(
                    Subjects.Heartbeat(Name),
                    JsonSerializer.SerializeToUtf8Bytes(heartbeat, ConveyorJson.Context.HeartbeatMessage),
                    cancellationToken: cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // The next tick sends another; the engine's lease spans at least three.
                LogEngineHeartbeatFailed(_logger, ex, Name, heartbeat.Attempts.Count);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Driver {Driver} could not send the engine a heartbeat for {Count} steps in progress")]
    private static partial void LogEngineHeartbeatFailed(ILogger logger, Exception exception, string driver, int count);
}
