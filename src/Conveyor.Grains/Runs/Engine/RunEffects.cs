using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Flow;

namespace Conveyor.Grains.Runs.Engine;

/// <summary>
/// What the outside world must be told or asked after a decision is stored. The set is closed; the grain executes a
/// decision's effects in order, except that <see cref="SyncIndex"/> and <see cref="PublishEvents"/> overlap with the
/// rest (each is redone from state if lost) and consecutive <see cref="DispatchStep"/>s go out as one batch.
/// </summary>
internal abstract record RunEffect
{
    private protected RunEffect()
    {
    }
}

/// <summary>File the run under its current status in the listing index (then <see cref="IndexSynced"/>).</summary>
internal sealed record SyncIndex : RunEffect
{
    /// <summary>The one instance.</summary>
    public static SyncIndex Instance { get; } = new();
}

/// <summary>Publish the run's outbox of CDEvents (then <see cref="EventsPublished"/>).</summary>
internal sealed record PublishEvents : RunEffect
{
    /// <summary>The one instance.</summary>
    public static PublishEvents Instance { get; } = new();
}

/// <summary>Tell a driver to stop working on an attempt (best effort).</summary>
/// <param name="Message">The cancel message.</param>
internal sealed record SendCancel(CancelMessage Message) : RunEffect;

/// <summary>Publish an attempt to its driver (then <see cref="DispatchesSettled"/> for the batch).</summary>
/// <param name="Step">Step id.</param>
/// <param name="Attempt">Attempt number.</param>
/// <param name="Driver">The step's driver.</param>
internal sealed record DispatchStep(string Step, int Attempt, string Driver) : RunEffect;

/// <summary>Ask the run's admission queue for a slot (then <see cref="SlotGranted"/> or <see cref="Superseded"/>).</summary>
/// <param name="Queue">The queue's key.</param>
/// <param name="Request">What the run asks for.</param>
internal sealed record AcquireSlot(string Queue, AdmissionRequest Request) : RunEffect;

/// <summary>Give the run's slot back; when that fails, the keepalive stays to try again.</summary>
/// <param name="Queue">The queue's key.</param>
internal sealed record ReleaseSlot(string Queue) : RunEffect;

/// <summary>Ask the resource whether it committed this run (then <see cref="CommitChecked"/>).</summary>
/// <param name="ResourceKey">The resource grain's key.</param>
internal sealed record CheckCommit(string ResourceKey) : RunEffect;

/// <summary>Register the durable keepalive (before the state that needs it is stored).</summary>
internal sealed record RegisterKeepAlive : RunEffect
{
    /// <summary>The one instance.</summary>
    public static RegisterKeepAlive Instance { get; } = new();
}

/// <summary>The run needs no waking any more: drop its timer and its keepalive.</summary>
internal sealed record StopKeepAlive : RunEffect
{
    /// <summary>The one instance.</summary>
    public static StopKeepAlive Instance { get; } = new();
}

/// <summary>Wake the run (<see cref="Tick"/>) at a time; null: nothing is due.</summary>
/// <param name="At">When.</param>
internal sealed record ArmTimer(DateTimeOffset? At) : RunEffect;

/// <summary>Start a sub-pipeline step's child run (idempotent: the id is derived), then <see cref="ChildStartFailed"/> if it cannot be.</summary>
/// <param name="Step">The parent's step.</param>
/// <param name="ChildRunId">The child run's id.</param>
/// <param name="Pipeline">The child's pipeline.</param>
/// <param name="Params">The child run's params (raw JSON object), or null.</param>
internal sealed record StartChild(string Step, Guid ChildRunId, string Pipeline, string? Params) : RunEffect;

/// <summary>Ask a child run how it is; start it if it was never started, report it (<see cref="ChildEnded"/>) if it ended.</summary>
/// <param name="Child">What <see cref="StartChild"/> would start.</param>
internal sealed record CheckChild(StartChild Child) : RunEffect;

/// <summary>Cancel a sub-pipeline step's child run (best effort: it may have ended).</summary>
/// <param name="ChildRunId">The child run.</param>
/// <param name="Reason">Why.</param>
internal sealed record CancelChild(Guid ChildRunId, string Reason) : RunEffect;

/// <summary>Tell the parent run (one-way) that this child run ended; the parent also asks on its keepalive, so a lost call is found.</summary>
/// <param name="ParentRunId">The parent run.</param>
/// <param name="Ended">What the parent applies.</param>
internal sealed record NotifyParent(Guid ParentRunId, ChildEnded Ended) : RunEffect;

/// <summary>Something worth a log line, as data: the grain logs it once the decision is stored.</summary>
internal abstract record RunNote
{
    private protected RunNote()
    {
    }
}

/// <summary>The run holds its slot (or needs none) and its steps start.</summary>
internal sealed record RunStartedNote(string Pipeline, int Revision) : RunNote;

/// <summary>The run was started again from its failure.</summary>
internal sealed record RunRetriedNote(int RunAttempt) : RunNote;

/// <summary>The run was ended from outside its steps (cancel, timeout, supersession, abandoned commit).</summary>
internal sealed record RunEndedNote(RunStatus Status, string Reason) : RunNote;

/// <summary>The run reached its end; its slot and keepalive are being released.</summary>
internal sealed record RunFinishedNote(RunStatus Status) : RunNote;

/// <summary>A driver result ended an attempt.</summary>
internal sealed record StepFinishedNote(string Step, int Attempt, StepStatus Status) : RunNote;

/// <summary>A failed attempt will be retried.</summary>
internal sealed record RetryScheduledNote(string Step, int Attempt, DateTimeOffset NextAttemptAt) : RunNote;

/// <summary>A step's condition decided whether it runs, or could not be evaluated.</summary>
internal sealed record ConditionNote(string Step, bool Runs, string? Error) : RunNote;

/// <summary>An approval gate was decided.</summary>
internal sealed record ApprovalNote(string Step, bool Approved, string? By) : RunNote;

/// <summary>The run was paused or resumed.</summary>
internal sealed record PauseNote(bool Paused, string? By) : RunNote;

/// <summary>A metric to record once the decision is stored (counted once per transition, whatever reactivates).</summary>
internal abstract record RunReport
{
    private protected RunReport()
    {
    }
}

/// <summary>A run started (or started again).</summary>
internal sealed record RunStartedReport(string Namespace, string Pipeline) : RunReport;

/// <summary>An attempt ended.</summary>
internal sealed record StepFinishedReport(string Driver, StepStatus Status, TimeSpan Duration) : RunReport;

/// <summary>A run ended.</summary>
internal sealed record RunFinishedReport(string Namespace, string Pipeline, RunStatus Status) : RunReport;

/// <summary>An approval gate was decided (<c>approved</c>, <c>rejected</c> or <c>timedout</c>) after waiting so long.</summary>
internal sealed record ApprovalReport(string Namespace, string Pipeline, string Decision, TimeSpan Waited) : RunReport;

/// <summary>What <see cref="RunStateMachine.Apply"/> decided.</summary>
internal sealed class RunDecision
{
    private static readonly RunEffect[] NoEffects = [];
    private static readonly RunNote[] NoNotes = [];
    private static readonly RunReport[] NoReports = [];

    /// <summary>Nothing changed and nothing is to be done.</summary>
    public static RunDecision None { get; } = new(false, null, null, null, null, null, null);

    internal RunDecision(
        bool persist,
        IReadOnlyList<RunEffect>? beforeWrite,
        IReadOnlyList<RunEffect>? effects,
        IReadOnlyList<ApplyOutcome>? outcomes,
        IReadOnlyList<RunNote>? notes,
        IReadOnlyList<RunReport>? reports,
        string? refusal)
    {
        Persist = persist;
        BeforeWrite = beforeWrite ?? NoEffects;
        Effects = effects ?? NoEffects;
        Outcomes = outcomes;
        Notes = notes ?? NoNotes;
        Reports = reports ?? NoReports;
        Refusal = refusal;
    }

    /// <summary>The state changed and must be stored before any effect (the machine knows which steps).</summary>
    public bool Persist { get; }

    /// <summary>What must exist before the changed state is stored.</summary>
    public IReadOnlyList<RunEffect> BeforeWrite { get; }

    /// <summary>What to do once the state is stored, in order.</summary>
    public IReadOnlyList<RunEffect> Effects { get; }

    /// <summary>For <see cref="ApplyResults"/>: what became of each result, in order.</summary>
    public IReadOnlyList<ApplyOutcome>? Outcomes { get; }

    /// <summary>What is worth logging.</summary>
    public IReadOnlyList<RunNote> Notes { get; }

    /// <summary>Metrics to record once the state is stored.</summary>
    public IReadOnlyList<RunReport> Reports { get; }

    /// <summary>Why a command was refused (nothing changed): the run is in a status the command does not apply to.</summary>
    public string? Refusal { get; }
}
