namespace Conveyor.Client;

/// <summary>
/// A followed stream (a run's live log) ended before the server said it was over, and could not be resumed within
/// <see cref="ConveyorClient.StreamResumeAttempts"/> reconnects: what was read so far is complete up to
/// <see cref="LastEventId"/>, and reading on from there (<c>after</c>) continues without a gap or a duplicate.
/// </summary>
public sealed class ConveyorStreamInterruptedException : IOException
{
    /// <summary>Creates the exception.</summary>
    public ConveyorStreamInterruptedException()
        : this("The Conveyor API's stream ended before it was over.")
    {
    }

    /// <summary>Creates the exception.</summary>
    public ConveyorStreamInterruptedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public ConveyorStreamInterruptedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Id of the last event received (a log line's <see cref="LogLine.Seq"/>); null when none was.</summary>
    public string? LastEventId { get; init; }
}
