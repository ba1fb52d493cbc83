using Conveyor.Contracts;
using Conveyor.Grains.Runs;
using Microsoft.Extensions.Logging;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Conveyor.Grains.Nats;

/// <summary>The streams of what the engine stops keeping elsewhere: the run archive and the dead letters, each with limits of its own.</summary>
internal static partial class LifecycleStreams
{
    /// <summary>Creates (or updates) <c>conveyor-deadletter</c> and, when the archive is on, <c>conveyor-archive</c>.</summary>
    public static async Task EnsureAsync(INatsJSContext js, ConveyorNatsOptions nats, RunArchiveOptions archive, ILogger logger, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(js);
        ArgumentNullException.ThrowIfNull(nats);
        ArgumentNullException.ThrowIfNull(archive);
        List<StreamConfig> streams =
        [
            new(Subjects.DeadLetterStream, [Subjects.DeadLetterWildcard])
            {
                Retention = StreamConfigRetention.Limits,
                Storage = StreamConfigStorage.File,
                MaxAge = nats.DeadLetterRetention,
                MaxBytes = nats.DeadLetterMaxBytes,
                Discard = StreamConfigDiscard.Old,
                DuplicateWindow = Window(nats.DeadLetterRetention),
            },
        ];
        if (archive.Enabled)
        {
            streams.Add(new(Subjects.ArchiveStream, [Subjects.ArchiveWildcard])
            {
                Retention = StreamConfigRetention.Limits,
                Storage = StreamConfigStorage.File,
                MaxAge = archive.MaxAge,
                MaxBytes = archive.MaxBytes,
                // One copy per run: archiving a run again (after a retry) replaces it.
                MaxMsgsPerSubject = 1,
                Discard = StreamConfigDiscard.Old,
                DuplicateWindow = Window(archive.MaxAge),
            });
        }

        foreach (var config in streams)
        {
            // As many copies as the streams they keep what from (Conveyor:Nats:Replicas).
            config.NumReplicas = nats.Replicas;
            await js.CreateOrUpdateStreamAsync(config, cancellationToken).ConfigureAwait(false);
            LogStreamReady(logger, config.Name!);
        }
    }

    // JetStream refuses a de-duplication window longer than the stream's max age.
    private static TimeSpan Window(TimeSpan maxAge) => maxAge > TimeSpan.Zero && maxAge < TimeSpan.FromMinutes(2) ? maxAge : TimeSpan.FromMinutes(2);

    [LoggerMessage(Level = LogLevel.Information, Message = "JetStream stream {Stream} ready")]
    private static partial void LogStreamReady(ILogger logger, string stream);
}
