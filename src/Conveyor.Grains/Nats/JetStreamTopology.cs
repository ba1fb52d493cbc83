using Conveyor.Contracts;
using Conveyor.Grains.Resilience;
using Microsoft.Extensions.Logging;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Conveyor.Grains.Nats;

/// <summary>
/// Creates (or updates) the three streams of the original protocol, with the original's retention, and the engine's
/// log store stream, each with <see cref="ConveyorNatsOptions.Replicas"/> replicas.
/// </summary>
internal static partial class JetStreamTopology
{
    /// <summary>
    /// De-duplication window of the <c>messages</c> stream: a dispatch re-published within it with the same
    /// <c>Nats-Msg-Id</c> is dropped by JetStream, so re-publishing is free.
    /// </summary>
    public static readonly TimeSpan MessagesDuplicateWindow = TimeSpan.FromMinutes(2);

    // JetStream's answers (HTTP-like codes 500 and 503) when it cannot place a stream's replicas: a standalone server,
    // or a cluster with fewer servers than replicas. Not worth retrying at once, unlike other 5xx answers.
    private const int ReplicasNotSupported = 10074;
    private const int InsufficientResources = 10023;

    /// <summary>Ensures the <c>messages</c>, <c>pipeline-engine</c>, <c>logs-engine</c> and <c>conveyor-logs</c> streams exist.</summary>
    public static async Task EnsureStreamsAsync(INatsJSContext js, ConveyorNatsOptions options, ILogger logger, CancellationToken cancellationToken = default) =>
        await EnsureStreamsAsync(js, options, null, logger, cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// Ensures the streams of <see cref="EnsureStreamsAsync(INatsJSContext, ConveyorNatsOptions, ILogger, CancellationToken)"/>
    /// and, when <paramref name="eventsRetention"/> is set, the <c>conveyor-events</c> stream of CDEvents. An existing
    /// stream is updated to the configured replicas where the server allows it. Every stream is tried;
    /// <see cref="JetStreamPlacementException"/> then names each one JetStream refused (e.g. more replicas than the
    /// cluster has servers).
    /// </summary>
    public static async Task EnsureStreamsAsync(INatsJSContext js, ConveyorNatsOptions options, TimeSpan? eventsRetention, ILogger logger, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(js);
        ArgumentNullException.ThrowIfNull(options);
        StreamConfig[] streams =
        [
            new(Subjects.MessagesStream, [.. Subjects.MessagesStreamSubjects])
            {
                Retention = StreamConfigRetention.Interest,
                Storage = StreamConfigStorage.File,
                DuplicateWindow = MessagesDuplicateWindow,
            },
            new(Subjects.PipelineEngineStream, [Subjects.PipelinesWildcard])
            {
                Retention = StreamConfigRetention.Workqueue,
                Storage = StreamConfigStorage.File,
            },
            new(Subjects.LogsEngineStream, [Subjects.LogsWildcard])
            {
                Retention = StreamConfigRetention.Workqueue,
                Storage = StreamConfigStorage.File,
                MaxAge = options.LogRetention,
            },
            new(Subjects.LogStoreStream, [Subjects.LogStoreWildcard])
            {
                Retention = StreamConfigRetention.Limits,
                Storage = StreamConfigStorage.File,
                MaxAge = options.LogRetention,
                MaxBytes = options.LogMaxBytes,
                // JetStream refuses a de-duplication window longer than the stream's max age.
                DuplicateWindow = options.LogRetention < TimeSpan.FromMinutes(2) ? options.LogRetention : TimeSpan.FromMinutes(2),
            },
        ];
        if (eventsRetention is { } retention)
        {
            streams = [.. streams, new(Subjects.EventsStream, [Subjects.CDEventsWildcard])
            {
                Retention = StreamConfigRetention.Limits,
                Storage = StreamConfigStorage.File,
                MaxAge = retention,
                DuplicateWindow = retention < TimeSpan.FromMinutes(2) ? retention : TimeSpan.FromMinutes(2),
            }];
        }

        var refused = new List<string>();
        foreach (var config in streams)
        {
            config.NumReplicas = options.Replicas;
            try
            {
                var stream = await js.CreateOrUpdateStreamAsync(config, cancellationToken).ConfigureAwait(false);
                // A standalone nats-server accepts any replica count and quietly keeps one.
                var placed = stream.Info.Config.NumReplicas;
                if (placed < options.Replicas)
                {
                    LogStreamRefused(logger, config.Name!, options.Replicas, $"placed with {placed}", 0);
                    refused.Add($"JetStream cannot place stream {config.Name} with {options.Replicas} replicas: it has {placed} (a single nats-server, or a cluster of fewer servers)");
                    continue;
                }

                LogStreamReady(logger, config.Name!, options.Replicas);
            }
            catch (NatsJSApiException ex) when (!TransientFaults.IsTransient(ex) || ex.Error.ErrCode is ReplicasNotSupported or InsufficientResources)
            {
                LogStreamRefused(logger, config.Name!, options.Replicas, ex.Error.Description ?? "", ex.Error.ErrCode);
                refused.Add($"JetStream cannot place stream {config.Name} with {options.Replicas} replicas: {ex.Error.Description} (error {ex.Error.ErrCode})");
            }
        }

        if (refused.Count > 0)
        {
            throw new JetStreamPlacementException(refused);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "JetStream stream {Stream} ready ({Replicas} replicas)")]
    private static partial void LogStreamReady(ILogger logger, string stream, int replicas);

    [LoggerMessage(Level = LogLevel.Error, Message = "JetStream refused stream {Stream} with {Replicas} replicas: {Description} (error {ErrorCode})")]
    private static partial void LogStreamRefused(ILogger logger, string stream, int replicas, string description, int errorCode);
}

/// <summary>JetStream refused to create or update one or more of the engine's streams as configured.</summary>
public sealed class JetStreamPlacementException(IReadOnlyList<string> problems) : Exception(string.Join("; ", problems))
{
    /// <summary>One entry per refused stream.</summary>
    public IReadOnlyList<string> Problems { get; } = problems;
}
