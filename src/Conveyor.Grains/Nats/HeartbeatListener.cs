using System.Text.Json;
using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Runs;
using Microsoft.Extensions.Logging;
using NATS.Client.Core;
using Orleans.Runtime;

namespace Conveyor.Grains.Nats;

/// <summary>
/// Hands drivers' heartbeats (core NATS <c>conveyor.heartbeat.{driver}</c>) to their runs. Every silo subscribes in one
/// queue group, so each heartbeat reaches one silo; a lost heartbeat costs nothing (the next one comes a heartbeat
/// interval later, and a lease spans at least three). The run grain decides what a heartbeat changes.
/// </summary>
internal sealed partial class HeartbeatListener(INatsConnection connection, IGrainFactory grains, ILogger<HeartbeatListener> logger)
    : SiloBackgroundLoop
{
    private const string QueueGroup = "conveyor-engine-heartbeats";
    private const int MaxAttemptsPerMessage = 10_000;

    protected override async Task RunAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await foreach (var msg in connection.SubscribeAsync<byte[]>(Subjects.HeartbeatWildcard, queueGroup: QueueGroup, cancellationToken: cancellationToken).ConfigureAwait(false))
                {
                    Handle(msg.Data);
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                LogSubscriptionFailed(logger, ex);
                try
                {
                    await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    private void Handle(byte[]? data)
    {
        HeartbeatMessage? heartbeat;
        try
        {
            heartbeat = data is { Length: > 0 } ? JsonSerializer.Deserialize(data, ConveyorJson.Context.HeartbeatMessage) : null;
        }
        catch (JsonException ex)
        {
            LogMalformed(logger, ex);
            return;
        }

        if (heartbeat is null)
        {
            return;
        }

        TimeSpan? interval = heartbeat.IntervalMs > 0 ? TimeSpan.FromMilliseconds(heartbeat.IntervalMs) : null;
        foreach (var attempt in heartbeat.Attempts.Take(MaxAttemptsPerMessage))
        {
            if (attempt is not null && Guid.TryParse(attempt.RunId, out var runId) && !string.IsNullOrEmpty(attempt.Step) && attempt.Attempt > 0)
            {
                // One-way: the subscription never waits for a run.
                _ = grains.GetRunGrain(runId).HeartbeatAsync(attempt.Step, attempt.Attempt, interval);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "The driver heartbeat subscription failed; subscribing again")]
    private static partial void LogSubscriptionFailed(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Debug, Message = "A malformed driver heartbeat was ignored")]
    private static partial void LogMalformed(ILogger logger, Exception exception);
}
