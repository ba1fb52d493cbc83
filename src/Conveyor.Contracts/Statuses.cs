using System.Text.Json.Serialization;

namespace Conveyor.Contracts;

/// <summary>Status of a run; on the wire as its name (<c>"Succeeded"</c>).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<RunStatus>))]
public enum RunStatus
{
    /// <summary>Created, not started yet.</summary>
    Pending = 0,

    /// <summary>Steps are being dispatched or executed.</summary>
    Running = 1,

    /// <summary>Every step succeeded (or failed with <c>allowFailure</c>).</summary>
    Succeeded = 2,

    /// <summary>A step failed for good.</summary>
    Failed = 3,

    /// <summary>Cancelled by a user.</summary>
    Cancelled = 4,

    /// <summary>The run's timeout expired.</summary>
    TimedOut = 5,

    /// <summary>
    /// Committed, waiting for a concurrency slot of its pipeline, concurrency group or namespace; nothing dispatched.
    /// (Numbered last so stored values of the other statuses keep their meaning.)
    /// </summary>
    Queued = 6,

    /// <summary>
    /// Paused by a user: nothing new is dispatched, in-flight steps finish and are recorded; resumed, it continues.
    /// Its deadlines keep running.
    /// </summary>
    Paused = 7,
}

/// <summary>Status of a step in a run; on the wire as its name (<c>"Retrying"</c>).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<StepStatus>))]
public enum StepStatus
{
    /// <summary>Waiting for its dependencies.</summary>
    Pending = 0,

    /// <summary>Sent to its driver (or waiting for the driver to appear); no result yet.</summary>
    Dispatched = 1,

    /// <summary>The driver reported progress; or a matrix step's instances, or a sub-pipeline step's child run, are running.</summary>
    Running = 2,

    /// <summary>The driver reported success.</summary>
    Succeeded = 3,

    /// <summary>The driver reported failure and no attempt is left.</summary>
    Failed = 4,

    /// <summary>An attempt failed; the next one waits for its backoff delay.</summary>
    Retrying = 5,

    /// <summary>Not run: its <c>when</c> condition was false, a dependency failed, or the run ended (the step's reason says which).</summary>
    Skipped = 6,

    /// <summary>Cancelled while in flight.</summary>
    Cancelled = 7,

    /// <summary>The attempt's timeout expired and no attempt is left.</summary>
    TimedOut = 8,

    /// <summary>An approval gate waits for a user to approve or reject it (no driver is involved).</summary>
    WaitingForApproval = 9,
}
