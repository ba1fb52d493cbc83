using Conveyor.Contracts;

namespace Conveyor.Grains.Abstractions;

/// <summary>Everything a run needs to start: fixed when the run is created, never changed by later edits.</summary>
/// <remarks>
/// Nothing changes a plan, or what it holds, once it is built: Orleans passes it between grains of one silo by
/// reference instead of copying it. A run's state is copied for every read of the run (the API's GET, a cancel's
/// answer), and the plan with its pipeline and resource was about half of that copy.
/// </remarks>
[GenerateSerializer]
[Immutable]
[Alias("conveyor.RunPlan")]
public sealed class RunPlan
{
    /// <summary>Namespace of the run.</summary>
    [Id(0)] public string Namespace { get; set; } = Names.DefaultNamespace;

    /// <summary>Snapshot of the pipeline at the time the run was created.</summary>
    [Id(1)] public PipelineSpec Pipeline { get; set; } = new();

    /// <summary>Snapshot of the resource the run is for.</summary>
    [Id(2)] public ResourceData Resource { get; set; } = new();

    /// <summary>Priority, <see cref="RunPriority.Min"/>–<see cref="RunPriority.Max"/>; a higher number is admitted first.</summary>
    [Id(3)] public int Priority { get; set; } = RunPriority.Default;

    /// <summary>What started the run: <c>resource</c>, <c>manual</c>, <c>schedule:&lt;name&gt;</c> or <c>webhook:&lt;name&gt;</c>.</summary>
    [Id(4)] public string Trigger { get; set; } = RunTriggers.Resource;

    /// <summary>Run parameters as a raw JSON object, merged over each step's own <c>params</c>; null when none.</summary>
    [Id(5)] public string? Params { get; set; }

    /// <summary>
    /// What identifies the trigger event: the occurrence a schedule fired for (ISO 8601 UTC), a webhook's delivery id,
    /// or a manual trigger's idempotency key; null when none.
    /// </summary>
    [Id(6)] public string? TriggerId { get; set; }

    /// <summary>
    /// The API key (id) that started the run — by a manual trigger or by creating its resource; null when no key did
    /// (authentication off, a schedule, a webhook: <see cref="Trigger"/> says which).
    /// </summary>
    [Id(7)] public string? TriggeredBy { get; set; }
    // Ids from 10 on: sub-pipelines.

    /// <summary>The run whose sub-pipeline step started this one; null for a run started by a trigger.</summary>
    [Id(10)] public Guid? ParentRunId { get; set; }

    /// <summary>The parent's step that started this run.</summary>
    [Id(11)] public string? ParentStep { get; set; }

    /// <summary>How deep this run is nested under sub-pipeline steps (0 for a run started by a trigger).</summary>
    [Id(12)] public int Depth { get; set; }
}

/// <summary>Run priority bounds.</summary>
public static class RunPriority
{
    /// <summary>Lowest priority.</summary>
    public const int Min = 1;

    /// <summary>Highest priority.</summary>
    public const int Max = 5;

    /// <summary>Priority of a run that names none.</summary>
    public const int Default = 3;

    /// <summary>Throws a <see cref="ConveyorValidationException"/> naming <paramref name="field"/> when out of range.</summary>
    public static void Validate(int priority, string field)
    {
        if (priority is < Min or > Max)
        {
            throw new ConveyorValidationException(field, $"'{field}' must be between {Min} and {Max} (got {priority})");
        }
    }
}

/// <summary>Values of <see cref="RunPlan.Trigger"/>.</summary>
public static class RunTriggers
{
    /// <summary>Created or updated resource.</summary>
    public const string Resource = "resource";

    /// <summary><c>POST /pipelines/{name}/runs</c>.</summary>
    public const string Manual = "manual";

    /// <summary>A pipeline schedule (<c>schedule:&lt;name&gt;</c>).</summary>
    public static string Schedule(string name) => "schedule:" + name;

    /// <summary>A pipeline webhook (<c>webhook:&lt;name&gt;</c>).</summary>
    public static string Webhook(string name) => "webhook:" + name;

    /// <summary>A sub-pipeline step of another run (<c>parent:&lt;run id&gt;</c>).</summary>
    public static string Parent(Guid parentRunId) => "parent:" + parentRunId.ToString("D");
}

/// <summary>Result of <see cref="IPipelineRunGrain.CreateAsync"/>.</summary>
[GenerateSerializer]
[Alias("conveyor.CreateRunResult")]
public sealed class CreateRunResult
{
    /// <summary>The run as stored.</summary>
    [Id(0)] public RunState Run { get; set; } = new();

    /// <summary>False when a run with this id already existed (an idempotent repeat): nothing was started.</summary>
    [Id(1)] public bool Created { get; set; }
}

/// <summary>
/// Run ids derived from what triggered a run, so that repeating a trigger (a redelivered webhook, a retried schedule
/// tick, a client retry with the same idempotency key) addresses the same run instead of starting a second one.
/// </summary>
public static class RunIds
{
    /// <summary>The child run a sub-pipeline step starts in one run attempt of its parent: the same every time it is asked.</summary>
    public static Guid Child(Guid parentRunId, string step, int runAttempt) =>
        Derive("child", parentRunId.ToString(), step, runAttempt.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>A UUID (version 8, RFC 9562) from the SHA-256 of the parts.</summary>
    public static Guid Derive(params string[] parts)
    {
        ArgumentNullException.ThrowIfNull(parts);
        var hash = System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(string.Join('\n', parts)));
        var bytes = hash.AsSpan(0, 16).ToArray();
        bytes[6] = (byte)((bytes[6] & 0x0F) | 0x80);
        bytes[8] = (byte)((bytes[8] & 0x3F) | 0x80);
        return new Guid(bytes, bigEndian: true);
    }
}

/// <summary>One attempt of a step.</summary>
[GenerateSerializer]
[Alias("conveyor.AttemptState")]
public sealed class AttemptState
{
    /// <summary>1-based attempt number.</summary>
    [Id(0)] public int Number { get; set; }

    /// <summary>When the engine decided to dispatch the attempt.</summary>
    [Id(1)] public DateTimeOffset DispatchedAt { get; set; }

    /// <summary>Whether JetStream acknowledged the dispatch (the outbox entry is confirmed).</summary>
    [Id(2)] public bool Published { get; set; }

    /// <summary>When the result arrived.</summary>
    [Id(3)] public DateTimeOffset? FinishedAt { get; set; }

    /// <summary>The driver's verdict, once known.</summary>
    [Id(4)] public bool? Success { get; set; }

    /// <summary>The driver's message, or the engine's reason for ending the attempt.</summary>
    [Id(5)] public string Message { get; set; } = "";

    /// <summary>The driver's <c>data</c>, as raw JSON: the one copy of a result's data (the step's output is this).</summary>
    [Id(6)] public string? Data { get; set; }

    /// <summary>When a driver consumer for the step's subject was first found (null while waiting for one).</summary>
    [Id(7)] public DateTimeOffset? PublishedAt { get; set; }

    /// <summary>Whether the attempt ended because its timeout expired.</summary>
    [Id(8)] public bool TimedOut { get; set; }

    /// <summary>
    /// JetStream stream sequence of the dispatch: the order in which a driver receives its messages, used to match a
    /// result that names no step (an original driver's) to the right attempt.
    /// </summary>
    [Id(9)] public ulong Sequence { get; set; }

    /// <summary>Whether the attempt's start was reported (metrics, <c>taskrun.started</c>).</summary>
    [Id(10)] public bool StartReported { get; set; }

    /// <summary>Whether the attempt's end was reported (metrics, <c>taskrun.finished</c>).</summary>
    [Id(11)] public bool FinishReported { get; set; }

    /// <summary>
    /// When the driver last reported progress on the attempt (a heartbeat); null when it never did. Updated when the
    /// heartbeat moves the attempt's lease, so it may lag the latest heartbeat by up to a quarter of the lease.
    /// </summary>
    [Id(30)] public DateTimeOffset? LastHeartbeatAt { get; set; }
}

/// <summary>A step's state in a run.</summary>
[GenerateSerializer]
[Alias("conveyor.StepState")]
public sealed class StepState
{
    /// <summary>Step id.</summary>
    [Id(0)] public string Id { get; set; } = "";

    /// <summary>Status.</summary>
    [Id(1)] public StepStatus Status { get; set; }

    /// <summary>Every attempt so far, oldest first.</summary>
    [Id(2)] public List<AttemptState> Attempts { get; set; } = [];

    /// <summary>The step's output as versions before the attempt held it alone stored it beside; read, never written.</summary>
    [Id(3)] public string? LegacyOutput { get; set; }

    /// <summary>The driver's last result as versions before the attempt held it alone stored it beside; read, never written.</summary>
    [Id(4)] public string? LegacyResultJson { get; set; }

    /// <summary>Order in which the step's result arrived (1-based), used to build <c>driverresults.*</c> deterministically.</summary>
    [Id(5)] public int CompletionOrder { get; set; }

    /// <summary>When the next attempt is due (status <see cref="StepStatus.Retrying"/>).</summary>
    [Id(6)] public DateTimeOffset? NextAttemptAt { get; set; }

    /// <summary>When the current attempt times out (in flight, with a step timeout).</summary>
    [Id(7)] public DateTimeOffset? DeadlineAt { get; set; }

    /// <summary>Attempts made before the current start of the run; a retry of the run gives each step a fresh retry budget.</summary>
    [Id(8)] public int BudgetStart { get; set; }

    /// <summary>The current attempt, if any.</summary>
    public AttemptState? Current => Attempts.Count == 0 ? null : Attempts[^1];

    // Ids from 20 on: the pipeline language.

    /// <summary>Why a <see cref="StepStatus.Skipped"/> step was skipped (a condition's skip satisfies dependents).</summary>
    [Id(20)] public SkipReason SkipReason { get; set; }

    /// <summary>
    /// What the engine says about a step that has no attempt to say it: why it was skipped, why a condition, matrix,
    /// approval or child run failed it.
    /// </summary>
    [Id(21)] public string? Reason { get; set; }

    /// <summary>A matrix step's instances, in combination order (each a step of its own with attempts); null otherwise.</summary>
    [Id(22)] public List<StepState>? Instances { get; set; }

    /// <summary>A matrix instance's combination (raw JSON, handed to the driver as <c>params.matrix</c>); null otherwise.</summary>
    [Id(23)] public string? Matrix { get; set; }

    /// <summary>An approval gate's decision, once made.</summary>
    [Id(24)] public ApprovalRecord? Approval { get; set; }

    /// <summary>A sub-pipeline step's child run (of the current run attempt).</summary>
    [Id(25)] public Guid? ChildRunId { get; set; }

    /// <summary>When an approval gate started waiting or a sub-pipeline step started its child.</summary>
    [Id(26)] public DateTimeOffset? StartedAt { get; set; }

    /// <summary>Whether this is an instance of a matrix step.</summary>
    public bool IsInstance => Matrix is not null;

    /// <summary>
    /// The step's output, handed to its dependents: the <c>data</c> of the successful attempt (raw JSON); for a
    /// succeeded matrix step, the array of its instances' outputs in combination order. Null unless it succeeded.
    /// </summary>
    public string? Output => Status != StepStatus.Succeeded ? null
        : Instances is { } instances ? "[" + string.Join(",", instances.Select(i => i.Output ?? "null")) + "]"
        : Current?.Data;
}

/// <summary>Why a step was skipped.</summary>
public enum SkipReason
{
    /// <summary>Not skipped.</summary>
    None = 0,

    /// <summary>A dependency failed (or was skipped for that reason): the step is blocked, and so are its dependents.</summary>
    Dependency = 1,

    /// <summary>Its <c>when</c> condition was false: the step counts as done and its dependents run.</summary>
    Condition = 2,

    /// <summary>The run ended first (cancelled, timed out, or stopped by a failure).</summary>
    RunEnded = 3,
}

/// <summary>An approval gate's decision.</summary>
[GenerateSerializer]
[Alias("conveyor.ApprovalRecord")]
public sealed class ApprovalRecord
{
    /// <summary>Approved (true) or rejected (false).</summary>
    [Id(0)] public bool Approved { get; set; }

    /// <summary>The API key id that decided; null when authentication is off.</summary>
    [Id(1)] public string? By { get; set; }

    /// <summary>When.</summary>
    [Id(2)] public DateTimeOffset At { get; set; }

    /// <summary>The decider's comment.</summary>
    [Id(3)] public string? Comment { get; set; }
}

/// <summary>The durable state of a run, and what the API reads.</summary>
[GenerateSerializer]
[Alias("conveyor.RunState")]
public sealed class RunState
{
    /// <summary>Run id.</summary>
    [Id(0)] public Guid RunId { get; set; }

    /// <summary>The plan the run executes.</summary>
    [Id(1)] public RunPlan Plan { get; set; } = new();

    /// <summary>Status.</summary>
    [Id(2)] public RunStatus Status { get; set; }

    /// <summary>Per step state, in the pipeline's step order.</summary>
    [Id(3)] public List<StepState> Steps { get; set; } = [];

    /// <summary>When the run was created.</summary>
    [Id(4)] public DateTimeOffset CreatedAt { get; set; }

    /// <summary>When the run started.</summary>
    [Id(5)] public DateTimeOffset? StartedAt { get; set; }

    /// <summary>When the run ended.</summary>
    [Id(6)] public DateTimeOffset? FinishedAt { get; set; }

    /// <summary>Why the run ended the way it did.</summary>
    [Id(7)] public string Message { get; set; } = "";

    /// <summary>Whether the resource that owns this run was committed (the run may start).</summary>
    [Id(8)] public bool Committed { get; set; }

    /// <summary>Counter behind <see cref="StepState.CompletionOrder"/>.</summary>
    [Id(9)] public int Completions { get; set; }

    /// <summary>When the run times out, if the pipeline has a run timeout.</summary>
    [Id(10)] public DateTimeOffset? DeadlineAt { get; set; }

    /// <summary>How many times the run was started: 1, plus one per retry-from-failure.</summary>
    [Id(11)] public int RunAttempt { get; set; }

    /// <summary>The status the listing index last recorded (repaired on activation when it differs from <see cref="Status"/>).</summary>
    [Id(12)] public RunStatus? IndexedStatus { get; set; }

    /// <summary>
    /// W3C <c>traceparent</c> of the span that started the run (or its latest retry): later dispatches continue this
    /// trace even when nothing traced wakes the run (a timer, a reminder).
    /// </summary>
    [Id(13)] public string? TraceParent { get; set; }

    /// <summary>Run status last reported as an event (null: the run's creation was not reported yet).</summary>
    [Id(14)] public RunStatus? ReportedStatus { get; set; }

    /// <summary><see cref="RunAttempt"/> when <see cref="ReportedStatus"/> was reported.</summary>
    [Id(15)] public int ReportedRunAttempt { get; set; }

    /// <summary>Events decided with a persisted transition and not yet confirmed published (the events outbox).</summary>
    [Id(16)] public List<OutboxEvent> Outbox { get; set; } = [];

    /// <summary>Key of the admission queue the run took its slot from (null when no limit applied); released when it ends.</summary>
    [Id(17)] public string? AdmissionKey { get; set; }

    /// <summary>The API key (id) that cancelled the run, when one did.</summary>
    [Id(18)] public string? CancelledBy { get; set; }

    /// <summary>The API key (id) that last retried the run, when one did.</summary>
    [Id(19)] public string? RetriedBy { get; set; }
    // Ids from 20 on: the pipeline language.

    /// <summary>When the run was last paused (while <see cref="RunStatus.Paused"/>, and after, until the next pause).</summary>
    [Id(20)] public DateTimeOffset? PausedAt { get; set; }

    /// <summary>The API key id that last paused the run, when one did.</summary>
    [Id(21)] public string? PausedBy { get; set; }

    /// <summary>The number of the run's last transition handed to the run events feed (1-based; 0 before the first).</summary>
    [Id(22)] public long EventSequence { get; set; }

    /// <summary>Run and step transitions decided with a persisted write and not yet confirmed published (the feed's outbox).</summary>
    [Id(23)] public List<RunEventBatch> EventOutbox { get; set; } = [];

    /// <summary>
    /// When retention deletes the finished run (and archives it first, when an archive is configured); null while the
    /// run is unfinished, or when its retention keeps it forever.
    /// </summary>
    [Id(30)] public DateTimeOffset? ExpiresAt { get; set; }

    /// <summary>A step by id: a step of the plan, or an instance of a matrix step (<c>build[0]</c>).</summary>
    public StepState? FindStep(string id)
    {
        foreach (var step in Steps)
        {
            if (string.Equals(step.Id, id, StringComparison.Ordinal))
            {
                return step;
            }

            if (step.Instances is { } instances && id.StartsWith(step.Id, StringComparison.Ordinal) && id.Length > step.Id.Length && id[step.Id.Length] == '[')
            {
                return instances.Find(i => string.Equals(i.Id, id, StringComparison.Ordinal));
            }
        }

        return null;
    }

    /// <summary>The spec of a step or of a matrix instance (its step's).</summary>
    public StepSpec? FindSpec(string id)
    {
        var bracket = id.IndexOf('[', StringComparison.Ordinal);
        var specId = bracket < 0 ? id : id[..bracket];
        return Plan.Pipeline.Steps.Find(s => string.Equals(s.Id, specId, StringComparison.Ordinal));
    }
}

/// <summary>The transitions one persisted decision made, published to the run events feed as one message.</summary>
[GenerateSerializer]
[Alias("conveyor.RunEventBatch")]
public sealed class RunEventBatch
{
    /// <summary>The run's transition number of the first item (the batch's de-duplication id with the run id).</summary>
    [Id(0)] public long First { get; set; }

    /// <summary>The transitions, in the order they happened.</summary>
    [Id(1)] public List<RunTransition> Items { get; set; } = [];
}

/// <summary>One run or step transition, as the run events feed carries it.</summary>
[GenerateSerializer]
[Alias("conveyor.RunTransition")]
public sealed class RunTransition
{
    /// <summary>The run's transition number (1-based, gap-free).</summary>
    [Id(0)] public long Sequence { get; set; }

    /// <summary>When it happened.</summary>
    [Id(1)] public DateTimeOffset At { get; set; }

    /// <summary>The step (or matrix instance) that changed; null when the run changed.</summary>
    [Id(2)] public string? Step { get; set; }

    /// <summary>The new status's name.</summary>
    [Id(3)] public string Status { get; set; } = "";

    /// <summary>The previous status's name.</summary>
    [Id(4)] public string? Previous { get; set; }

    /// <summary>The step's attempt number (0 for the run, or a step without attempts).</summary>
    [Id(5)] public int Attempt { get; set; }

    /// <summary>What the engine says about it (an attempt's message, a skip's reason, why the run ended), if anything.</summary>
    [Id(6)] public string? Message { get; set; }

    /// <summary>The run's status right after the transition (a step's transition is before the run's own in the same decision).</summary>
    [Id(7)] public RunStatus RunStatus { get; set; }
}

/// <summary>A CDEvent waiting in a run's outbox.</summary>
[GenerateSerializer]
[Alias("conveyor.OutboxEvent")]
public sealed class OutboxEvent
{
    /// <summary>Stable event id (also the JetStream de-duplication id).</summary>
    [Id(0)] public string Id { get; set; } = "";

    /// <summary>CDEvents type.</summary>
    [Id(1)] public string Type { get; set; } = "";

    /// <summary>Namespace of the run (picks the subject).</summary>
    [Id(2)] public string Namespace { get; set; } = "";

    /// <summary>
    /// The CloudEvent as JSON, when it was built up front (runs stored by earlier versions); null when it is built from
    /// the fields below as it is published, which keeps the run's stored outbox small.
    /// </summary>
    [Id(3)] public string? Json { get; set; }

    /// <summary>When the transition happened.</summary>
    [Id(4)] public DateTimeOffset At { get; set; }

    /// <summary>Run id.</summary>
    [Id(5)] public Guid RunId { get; set; }

    /// <summary>Pipeline name.</summary>
    [Id(6)] public string Pipeline { get; set; } = "";

    /// <summary>URL of the run under the configured base URL, or null for its API path.</summary>
    [Id(7)] public string? Url { get; set; }

    /// <summary>CDEvents outcome (finished events only).</summary>
    [Id(8)] public string? Outcome { get; set; }

    /// <summary>Why the run or attempt did not succeed (finished events only).</summary>
    [Id(9)] public string? Errors { get; set; }

    /// <summary>Run attempt (pipelineRun events).</summary>
    [Id(10)] public int RunAttempt { get; set; }

    /// <summary>Step id for a taskRun event; null for a pipelineRun event.</summary>
    [Id(11)] public string? Step { get; set; }

    /// <summary>Attempt number (taskRun events).</summary>
    [Id(12)] public int Attempt { get; set; }

    /// <summary>Driver of the step (taskRun events).</summary>
    [Id(13)] public string? Driver { get; set; }
}

/// <summary>A run as listings show it.</summary>
[GenerateSerializer]
[Alias("conveyor.RunSummary")]
public sealed class RunSummary
{
    /// <summary>Run id.</summary>
    [Id(0)] public Guid RunId { get; set; }

    /// <summary>Pipeline name.</summary>
    [Id(1)] public string Pipeline { get; set; } = "";

    /// <summary>Pipeline revision the run executes.</summary>
    [Id(2)] public int PipelineRevision { get; set; }

    /// <summary>Resource type.</summary>
    [Id(3)] public string ResourceType { get; set; } = "";

    /// <summary>Resource name.</summary>
    [Id(4)] public string ResourceName { get; set; } = "";

    /// <summary>Status.</summary>
    [Id(5)] public RunStatus Status { get; set; }

    /// <summary>Creation time.</summary>
    [Id(6)] public DateTimeOffset CreatedAt { get; set; }

    /// <summary>End time.</summary>
    [Id(7)] public DateTimeOffset? FinishedAt { get; set; }

    /// <summary>Why the run ended the way it did.</summary>
    [Id(8)] public string Message { get; set; } = "";

    /// <summary>Namespace.</summary>
    [Id(9)] public string Namespace { get; set; } = "";

    /// <summary>When retention deletes the finished run; null while unfinished or kept forever.</summary>
    [Id(30)] public DateTimeOffset? ExpiresAt { get; set; }

    /// <summary>
    /// The most finished runs of the pipeline that retention keeps (the run's plan says); null when the pipeline sets
    /// no such cap. Older finished runs beyond it are deleted whatever their expiry.
    /// </summary>
    [Id(31)] public int? KeepLast { get; set; }
}

/// <summary>A driver result as the engine applies it to a run.</summary>
[GenerateSerializer]
[Alias("conveyor.DriverResultInput")]
public sealed class DriverResultInput
{
    /// <summary>Reporting driver.</summary>
    [Id(0)] public string Driver { get; set; } = "";

    /// <summary>Step id from the SDK's header; null for original drivers.</summary>
    [Id(1)] public string? StepId { get; set; }

    /// <summary>Attempt from the SDK's header; null for original drivers.</summary>
    [Id(2)] public int? Attempt { get; set; }

    /// <summary>Verdict.</summary>
    [Id(3)] public bool Success { get; set; }

    /// <summary>Message.</summary>
    [Id(4)] public string Message { get; set; } = "";

    /// <summary>Data as raw JSON, or null.</summary>
    [Id(5)] public string? Data { get; set; }
}

/// <summary>What became of a driver result.</summary>
public enum ApplyOutcome
{
    /// <summary>The result changed the run.</summary>
    Applied = 0,

    /// <summary>The same (step, attempt) already had a result: ignored.</summary>
    Duplicate = 1,

    /// <summary>The result is for an attempt that is no longer current, or for a run that ended: ignored.</summary>
    Stale = 2,

    /// <summary>No such run.</summary>
    UnknownRun = 3,

    /// <summary>The run has no step matching the result.</summary>
    UnknownStep = 4,
}
