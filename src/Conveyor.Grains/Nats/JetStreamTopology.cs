using Conveyor.Contracts;
using Microsoft.Extensions.Logging;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Conveyor.Grains.Nats;

/// <summary>
/// Creates (or updates) the three streams of the original protocol, with the original's retention, and the engine's
/// log store stream.
/// </summary>
internal static partial class JetStreamTopology
{
    /// <summary>
    /// De-duplication window of the <c>messages</c> stream: a dispatch re-published within it with the same
    /// <c>Nats-Msg-Id</c> is dropped by JetStream, so re-publishing is free.
    /// </summary>
    public static readonly TimeSpan MessagesDuplicateWindow = TimeSpan.FromMinutes(2);

    /// <summary>Ensures the <c>messages</c>, <c>pipeline-engine</c>, <c>logs-engine</c> and <c>conveyor-logs</c> streams exist.</summary>
    public static async Task EnsureStreamsAsync(INatsJSContext js, ConveyorNatsOptions options, ILogger logger, CancellationToken cancellationToken = default) =>
        await EnsureStreamsAsync(js, options, null, logger, cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// Ensures the streams of <see cref="EnsureStreamsAsync(INatsJSContext, ConveyorNatsOptions, ILogger, CancellationToken)"/>
    /// and, when <paramref name="eventsRetention"/> is set, the <c>conveyor-events</c> stream of CDEvents.
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

        foreach (var config in streams)
        {
            await js.CreateOrUpdateStreamAsync(config, cancellationToken).ConfigureAwait(false);
            LogStreamReady(logger, config.Name!);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "JetStream stream {Stream} ready")]
    private static partial void LogStreamReady(ILogger logger, string stream);
}
