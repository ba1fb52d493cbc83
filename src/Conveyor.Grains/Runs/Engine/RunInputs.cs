using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;

namespace Conveyor.Grains.Runs.Engine;

/// <summary>
/// Something that happened to a run. The set is closed: every change of a run's state is one of these, handed to
/// <see cref="RunStateMachine.Apply"/> with the time it happened.
/// </summary>
internal abstract record RunInput
{
    private protected RunInput()
    {
    }
}

/// <summary>A new run is stored before its resource commits; it starts when <see cref="StartRun"/> follows.</summary>
internal sealed record PrepareRun : RunInput
{
    /// <summary>The one instance.</summary>
    public static PrepareRun Instance { get; } = new();
}

/// <summary>The run's trigger committed: it starts, or queues when a concurrency limit applies. Idempotent.</summary>
/// <param name="TraceParent">The span that started it, remembered as the run's trace; null keeps the stored one.</param>
internal sealed record StartRun(string? TraceParent) : RunInput;

/// <summary>A prepared run's keepalive asked its resource, which answered: start if the resource names this run, else give up.</summary>
/// <param name="ResourceStored">Whether the resource exists.</param>
/// <param name="LastRunId">The run the resource last started.</param>
/// <param name="TraceParent">The span of the start, if it happens.</param>
internal sealed record CommitChecked(bool ResourceStored, Guid? LastRunId, string? TraceParent) : RunInput;

/// <summary>Start a Failed, Cancelled or TimedOut run again from what did not succeed.</summary>
/// <param name="TraceParent">The span of the retry, remembered as the run's trace.</param>
internal sealed record RetryRun(string? TraceParent) : RunInput;

/// <summary>Cancel the run; refused when it already ended.</summary>
/// <param name="Reason">Why; empty means "cancelled".</param>
internal sealed record CancelRun(string Reason) : RunInput;

/// <summary>The run's admission queue gave it a slot.</summary>
internal sealed record SlotGranted : RunInput
{
    /// <summary>The one instance.</summary>
    public static SlotGranted Instance { get; } = new();
}

/// <summary>A newer run of the concurrency group replaces this one.</summary>
/// <param name="By">The newer run.</param>
internal sealed record Superseded(Guid By) : RunInput;

/// <summary>Driver results, applied together and stored by one write (group commit).</summary>
/// <param name="Results">The results, in arrival order; the decision has one outcome per result.</param>
internal sealed record ApplyResults(IReadOnlyList<DriverResultInput> Results) : RunInput;

/// <summary>The run's timer fired: due times (attempt deadlines, retry backoff, the run deadline) are applied.</summary>
internal sealed record Tick : RunInput
{
    /// <summary>The one instance.</summary>
    public static Tick Instance { get; } = new();
}

/// <summary>
/// A driver reported that it is still working on an attempt (the SDK's heartbeat). It proves the dispatch arrived and
/// keeps an attempt of a step without its own <c>timeout</c> alive for a lease; a step's own timeout is never extended.
/// </summary>
/// <param name="Step">Step id.</param>
/// <param name="Attempt">Attempt number.</param>
/// <param name="Interval">How often the driver heart-beats, when it says; the lease is at least three of them.</param>
internal sealed record Heartbeat(string Step, int Attempt, TimeSpan? Interval) : RunInput;

/// <summary>The run's durable keepalive fired: whatever the run waits for is asked for again.</summary>
internal sealed record KeepAliveTick : RunInput
{
    /// <summary>The one instance.</summary>
    public static KeepAliveTick Instance { get; } = new();
}

/// <summary>
/// The connection to NATS was re-opened since the run last looked: a restarted server can lose the writes it
/// acknowledged just before it stopped, so recent dispatches go out again.
/// </summary>
internal sealed record Reconnected : RunInput
{
    /// <summary>The one instance.</summary>
    public static Reconnected Instance { get; } = new();
}

/// <summary>What became of the <see cref="DispatchStep"/> effects of a decision.</summary>
/// <param name="Reports">One per dispatch.</param>
internal sealed record DispatchesSettled(IReadOnlyList<DispatchReport> Reports) : RunInput;

/// <summary>What became of one dispatch.</summary>
/// <param name="Step">Step id.</param>
/// <param name="Attempt">Attempt number.</param>
/// <param name="Sequence">JetStream stream sequence when the message was stored; null when it was not (no consumer, or a fault).</param>
/// <param name="At">When JetStream confirmed it.</param>
/// <param name="Error">
/// Why the dispatch can never be published (it exceeds the server's maximum message size); the attempt then fails for
/// good with this message. Null for a dispatch that was published or may be published later.
/// </param>
internal readonly record struct DispatchReport(string Step, int Attempt, ulong? Sequence, DateTimeOffset At, string? Error = null);

/// <summary>The first <paramref name="Count"/> CDEvents and the first <paramref name="Batches"/> run event batches of the outboxes were published.</summary>
/// <param name="Count">How many CDEvents.</param>
/// <param name="Batches">How many batches of run events.</param>
internal sealed record EventsPublished(int Count, int Batches = 0) : RunInput;

/// <summary>The listing index now files the run under <paramref name="Status"/>.</summary>
/// <param name="Status">The status written.</param>
internal sealed record IndexSynced(RunStatus Status) : RunInput;

/// <summary>A user approved or rejected an approval gate; refused unless the step waits for approval.</summary>
/// <param name="Step">The step.</param>
/// <param name="Approved">Approved (true) or rejected.</param>
/// <param name="By">The API key id that decided, or null.</param>
/// <param name="Comment">The decider's comment, or null.</param>
internal sealed record ApproveStep(string Step, bool Approved, string? By, string? Comment) : RunInput;

/// <summary>Pause the run: nothing new is dispatched until it resumes. Refused unless the run is Running.</summary>
/// <param name="By">The API key id that paused it, or null.</param>
internal sealed record PauseRun(string? By) : RunInput;

/// <summary>Resume a paused run. Refused unless the run is Paused.</summary>
/// <param name="By">The API key id that resumed it, or null.</param>
internal sealed record ResumeRun(string? By) : RunInput;

/// <summary>A sub-pipeline step's child run ended (told by the child, or found by asking it).</summary>
/// <param name="Step">The parent's step.</param>
/// <param name="ChildRunId">The child run.</param>
/// <param name="Status">How it ended.</param>
/// <param name="Message">Why.</param>
/// <param name="Outputs">The outputs of its succeeded steps as a JSON object by step id, or null.</param>
internal sealed record ChildEnded(string Step, Guid ChildRunId, RunStatus Status, string Message, string? Outputs) : RunInput;

/// <summary>A sub-pipeline step's child run could not be started (its pipeline is gone or runs for another resource type).</summary>
/// <param name="Step">The parent's step.</param>
/// <param name="ChildRunId">The child run it was to start.</param>
/// <param name="Message">Why.</param>
internal sealed record ChildStartFailed(string Step, Guid ChildRunId, string Message) : RunInput;
