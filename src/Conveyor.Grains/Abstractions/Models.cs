using Conveyor.Contracts;

namespace Conveyor.Grains.Abstractions;

/// <summary>A resource type: a name and the JSON Schema every resource <c>spec</c> of that type must satisfy.</summary>
[GenerateSerializer]
[Alias("conveyor.ResourceDefinitionData")]
public sealed class ResourceDefinitionData
{
    /// <summary>Server-assigned UUID.</summary>
    [Id(0)] public string Id { get; set; } = "";

    /// <summary>Name (the resource type).</summary>
    [Id(1)] public string Name { get; set; } = "";

    /// <summary>Free text.</summary>
    [Id(2)] public string Description { get; set; } = "";

    /// <summary>Free-text version, as in the original.</summary>
    [Id(3)] public string Version { get; set; } = "";

    /// <summary>The JSON Schema as raw JSON, or null when the definition has none.</summary>
    [Id(4)] public string? Schema { get; set; }

    /// <summary>When the definition was first stored.</summary>
    [Id(5)] public DateTimeOffset CreatedAt { get; set; }

    /// <summary>When the definition was last changed.</summary>
    [Id(6)] public DateTimeOffset UpdatedAt { get; set; }
}

/// <summary>A resource: an instance of a resource definition.</summary>
[GenerateSerializer]
[Alias("conveyor.ResourceData")]
public sealed class ResourceData
{
    /// <summary>Server-assigned UUID.</summary>
    [Id(0)] public string Id { get; set; } = "";

    /// <summary>Name, unique per type in a namespace.</summary>
    [Id(1)] public string Name { get; set; } = "";

    /// <summary>Resource type (definition name).</summary>
    [Id(2)] public string Type { get; set; } = "";

    /// <summary>Pipeline that runs when the resource is created, if any.</summary>
    [Id(3)] public string? Pipeline { get; set; }

    /// <summary>String metadata, including the server-managed <c>version</c>.</summary>
    [Id(4)] public Dictionary<string, string> Metadata { get; set; } = [];

    /// <summary>The spec as raw JSON (<c>null</c> when absent).</summary>
    [Id(5)] public string Spec { get; set; } = "null";

    /// <summary>Version number (mirrors <c>metadata.version</c>).</summary>
    [Id(6)] public int Version { get; set; }
}

/// <summary>What to do with the rest of a run when a step fails for good.</summary>
public enum FailurePolicy
{
    /// <summary>Stop dispatching and cancel in-flight steps (default).</summary>
    FailFast = 0,

    /// <summary>Keep running every step whose dependencies succeeded.</summary>
    Continue = 1,
}

/// <summary>A step's retry policy: exponential backoff with jitter.</summary>
[GenerateSerializer]
[Alias("conveyor.RetryPolicy")]
public sealed class RetryPolicy
{
    /// <summary>Attempts in total, the first included (1 = no retry).</summary>
    [Id(0)] public int MaxAttempts { get; set; } = 1;

    /// <summary>Delay before the second attempt.</summary>
    [Id(1)] public TimeSpan InitialDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Upper bound of any delay.</summary>
    [Id(2)] public TimeSpan MaxDelay { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Factor applied to the delay after each attempt.</summary>
    [Id(3)] public double Multiplier { get; set; } = 2;

    /// <summary>Random fraction (0–1) added to or taken from each delay.</summary>
    [Id(4)] public double Jitter { get; set; } = 0.2;
}

/// <summary>One step of a pipeline.</summary>
[GenerateSerializer]
[Alias("conveyor.StepSpec")]
public sealed class StepSpec
{
    /// <summary>Step id, unique in the pipeline.</summary>
    [Id(0)] public string Id { get; set; } = "";

    /// <summary>Display name.</summary>
    [Id(1)] public string Name { get; set; } = "";

    /// <summary>Driver that runs the step.</summary>
    [Id(2)] public string Driver { get; set; } = "";

    /// <summary>
    /// Ids of the steps this one waits for, after normalisation: when no step of the pipeline declares
    /// <c>dependsOn</c>, each step depends on the one before (the original's linear order).
    /// </summary>
    [Id(3)] public List<string> DependsOn { get; set; } = [];

    /// <summary>Retry policy; null uses the pipeline default.</summary>
    [Id(4)] public RetryPolicy? Retry { get; set; }

    /// <summary>Timeout of one attempt; null means none.</summary>
    [Id(5)] public TimeSpan? Timeout { get; set; }

    /// <summary>Parameters handed to the driver, as raw JSON.</summary>
    [Id(6)] public string? Params { get; set; }

    /// <summary>Whether the run may succeed although this step failed.</summary>
    [Id(7)] public bool AllowFailure { get; set; }

    /// <summary>Whether the step declared <c>dependsOn</c> itself (kept so that reads echo what was written).</summary>
    [Id(8)] public bool DeclaredDependsOn { get; set; }

    /// <summary>
    /// Names of the namespace's secrets the step's driver may fetch (with its step token); never their values.
    /// </summary>
    [Id(9)] public List<string> Secrets { get; set; } = [];

    // Ids from 20 on: the pipeline language (conditions, matrices, finally, approvals, sub-pipelines).

    /// <summary>
    /// A CEL expression evaluated when the step becomes ready (over <c>params</c>, <c>inputs</c>, <c>steps</c>,
    /// <c>resource</c>, <c>trigger</c> and <c>run</c>); false skips the step, and a step skipped so satisfies its
    /// dependents. Null: the step always runs.
    /// </summary>
    [Id(20)] public string? When { get; set; }

    /// <summary>Fan-out: one instance of the step per combination; null for a single step.</summary>
    [Id(21)] public MatrixSpec? Matrix { get; set; }

    /// <summary>What the step is: work for a driver, an approval gate or a sub-pipeline.</summary>
    [Id(22)] public StepKind Kind { get; set; }

    /// <summary>An approval gate's least role of the key that may approve or reject it (<c>operator</c> or <c>admin</c>).</summary>
    [Id(23)] public string? Approvers { get; set; }

    /// <summary>A sub-pipeline step's pipeline (in the run's namespace); the step's <c>params</c> are the child run's.</summary>
    [Id(24)] public string? Pipeline { get; set; }

    /// <summary>Whether the step belongs to the pipeline's <c>finally</c> steps, run once every other step has ended.</summary>
    [Id(25)] public bool Finally { get; set; }
}

/// <summary>What a step is.</summary>
public enum StepKind
{
    /// <summary>Work dispatched to a driver (the original's only kind).</summary>
    Driver = 0,

    /// <summary>An approval gate: waits for a user, no driver.</summary>
    Approval = 1,

    /// <summary>A sub-pipeline: starts a child run and ends as it ends.</summary>
    Pipeline = 2,
}

/// <summary>A step's fan-out: an instance per combination of axis values, or per element of a dependency's list.</summary>
[GenerateSerializer]
[Alias("conveyor.MatrixSpec")]
public sealed class MatrixSpec
{
    /// <summary>Axes, in declaration order; the combinations are their cartesian product (the last axis varies fastest).</summary>
    [Id(0)] public List<MatrixAxis> Axes { get; set; } = [];

    /// <summary>Most instances in flight at once; null: no limit.</summary>
    [Id(1)] public int? MaxParallel { get; set; }

    /// <summary>
    /// <c>&lt;step id&gt;.&lt;field&gt;[.&lt;field&gt;…]</c>: a JSON array in the output of a dependency, one instance per
    /// element (instead of <see cref="Axes"/>).
    /// </summary>
    [Id(2)] public string? FromInput { get; set; }
}

/// <summary>One axis of a matrix.</summary>
[GenerateSerializer]
[Alias("conveyor.MatrixAxis")]
public sealed class MatrixAxis
{
    /// <summary>Name: the key in <c>params.matrix</c>.</summary>
    [Id(0)] public string Name { get; set; } = "";

    /// <summary>Values, each as raw JSON.</summary>
    [Id(1)] public List<string> Values { get; set; } = [];
}

/// <summary>A pipeline definition: steps forming a DAG, bound to one resource type.</summary>
[GenerateSerializer]
[Alias("conveyor.PipelineSpec")]
public sealed class PipelineSpec
{
    /// <summary>Name.</summary>
    [Id(0)] public string Name { get; set; } = "";

    /// <summary>Free text.</summary>
    [Id(1)] public string Description { get; set; } = "";

    /// <summary>Free-text version, as in the original.</summary>
    [Id(2)] public string Version { get; set; } = "";

    /// <summary>Resource type the pipeline runs for.</summary>
    [Id(3)] public string ResourceType { get; set; } = "";

    /// <summary>Steps, in declaration order.</summary>
    [Id(4)] public List<StepSpec> Steps { get; set; } = [];

    /// <summary>Free metadata; null when the client sent none (echoed as <c>null</c> like the original).</summary>
    [Id(5)] public Dictionary<string, string>? Metadata { get; set; }

    /// <summary>Timeout of a whole run; null means none.</summary>
    [Id(6)] public TimeSpan? Timeout { get; set; }

    /// <summary>Failure policy.</summary>
    [Id(7)] public FailurePolicy FailurePolicy { get; set; }

    /// <summary>Default retry policy of steps that declare none.</summary>
    [Id(8)] public RetryPolicy? Retry { get; set; }

    /// <summary>Server-assigned revision, incremented by every write; a run records the one it started with.</summary>
    [Id(9)] public int Revision { get; set; }

    /// <summary>When the pipeline was last written.</summary>
    [Id(10)] public DateTimeOffset UpdatedAt { get; set; }

    /// <summary>Plain variables handed to every step's driver (not secret: readable by viewers); null when none.</summary>
    [Id(11)] public Dictionary<string, string>? Variables { get; set; }

    /// <summary>Most runs of this pipeline active at once; further runs queue. Null: no pipeline limit.</summary>
    [Id(12)] public int? Concurrency { get; set; }

    /// <summary>At most one active run per value of a key over the resource; null: no groups.</summary>
    [Id(13)] public ConcurrencyGroupSpec? ConcurrencyGroup { get; set; }
    
    /// <summary>Cron schedules that start runs.</summary>
    [Id(14)] public List<ScheduleSpec> Schedules { get; set; } = [];

    /// <summary>Webhooks that start runs (<c>POST /hooks/{namespace}/{pipeline}/{name}</c>).</summary>
    [Id(15)] public List<WebhookSpec> Webhooks { get; set; } = [];

    /// <summary>
    /// The step <c>params</c> keys a manual trigger may set in its run's <c>params</c>; a trigger that sets any other
    /// key is refused. Empty: a trigger may set none, so a step's params are what the pipeline says.
    /// </summary>
    [Id(16)] public List<string> OverridableParams { get; set; } = [];
    /// <summary>How long this pipeline's finished runs are kept, and how many; null: the namespace's or the engine's default.</summary>
    [Id(30)] public RetentionSpec? Retention { get; set; }
}

/// <summary>How long a pipeline's finished runs are kept before retention deletes them (archiving them first).</summary>
[GenerateSerializer]
[Alias("conveyor.RetentionSpec")]
public sealed class RetentionSpec
{
    /// <summary>
    /// How long after it ends a run is kept; <see cref="TimeSpan.Zero"/> keeps runs forever; null uses the namespace's
    /// or the engine's default (<c>Conveyor:Runs:RetentionPeriod</c>).
    /// </summary>
    [Id(0)] public TimeSpan? Period { get; set; }

    /// <summary>The most finished runs of the pipeline kept, newest first; older ones are deleted at once. Null: no cap.</summary>
    [Id(1)] public int? KeepLast { get; set; }
}

/// <summary>What a schedule does about occurrences that passed while no silo could fire them.</summary>
public enum MissedFirePolicy
{
    /// <summary>Fire once, for the latest missed occurrence (default); older missed ones are dropped.</summary>
    FireOnce = 0,

    /// <summary>Drop missed occurrences; fire only occurrences that are on time (within the grace period).</summary>
    Skip = 1,
}

/// <summary>A cron schedule of a pipeline.</summary>
[GenerateSerializer]
[Alias("conveyor.ScheduleSpec")]
public sealed class ScheduleSpec
{
    /// <summary>Name, unique in the pipeline (default <c>schedule-{n}</c>); part of every run id it derives.</summary>
    [Id(0)] public string Name { get; set; } = "";

    /// <summary>Cron expression: 5 fields, or 6 with seconds first.</summary>
    [Id(1)] public string Cron { get; set; } = "";

    /// <summary>IANA (or Windows) time zone id the expression is read in; default UTC.</summary>
    [Id(2)] public string TimeZone { get; set; } = "UTC";

    /// <summary>Name of the resource (of the pipeline's type) each run is for.</summary>
    [Id(3)] public string Resource { get; set; } = "";

    /// <summary>Priority of the runs.</summary>
    [Id(4)] public int Priority { get; set; } = RunPriority.Default;

    /// <summary>What to do about missed occurrences.</summary>
    [Id(5)] public MissedFirePolicy MissedFire { get; set; }
}

/// <summary>A webhook of a pipeline: an HMAC-signed body mapped to the run's resource.</summary>
[GenerateSerializer]
[Alias("conveyor.WebhookSpec")]
public sealed class WebhookSpec
{
    /// <summary>Name, unique in the pipeline: the last segment of the hook's URL.</summary>
    [Id(0)] public string Name { get; set; } = "";

    /// <summary>
    /// HMAC-SHA256 key of the delivery signature, as written (at least 32 characters). Write-only: the pipeline grain
    /// moves it, encrypted, to the namespace's secrets and stores the pipeline without it.
    /// </summary>
    [Id(1)] public string Secret { get; set; } = "";

    /// <summary>
    /// Resource fields from JSON pointers into the body: <c>name</c> (required), <c>spec.&lt;path&gt;</c>,
    /// <c>metadata.&lt;key&gt;</c>; e.g. <c>{"name": "/repository/name", "spec.branch": "/ref"}</c>.
    /// </summary>
    [Id(2)] public Dictionary<string, string> Resource { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Priority of the runs.</summary>
    [Id(3)] public int Priority { get; set; } = RunPriority.Default;

    /// <summary>
    /// Whether only timestamped signatures (<c>X-Conveyor-Timestamp</c> + <c>X-Conveyor-Signature-256</c>) are
    /// accepted, so a captured delivery cannot be replayed after the tolerance window. Off: GitHub's
    /// <c>X-Hub-Signature-256</c> over the body alone is accepted too.
    /// </summary>
    [Id(4)] public bool RequireTimestamp { get; set; }
}

/// <summary>What a new run does when another run of its concurrency group is queued or active.</summary>
public enum GroupConflictPolicy
{
    /// <summary>Wait behind the older runs of the group (default).</summary>
    Queue = 0,

    /// <summary>Cancel the older runs of the group (queued or running), then run.</summary>
    CancelInProgress = 1,
}

/// <summary>A pipeline's concurrency group: runs whose resources give the same key value run one at a time.</summary>
[GenerateSerializer]
[Alias("conveyor.ConcurrencyGroupSpec")]
public sealed class ConcurrencyGroupSpec
{
    /// <summary>
    /// Path into the run's resource snapshot: <c>name</c>, <c>type</c>, <c>metadata.&lt;key&gt;</c>, <c>spec</c> or
    /// <c>spec.&lt;member&gt;[.&lt;member&gt;…]</c> (a numeric member indexes an array).
    /// </summary>
    [Id(0)] public string Key { get; set; } = "";

    /// <summary>What a newer run does to older runs of its group.</summary>
    [Id(1)] public GroupConflictPolicy OnConflict { get; set; }
}

/// <summary>Extension methods on the status enums.</summary>
public static class StatusExtensions
{
    /// <summary>Whether a run in this status can change no more.</summary>
    public static bool IsTerminal(this RunStatus status) =>
        status is RunStatus.Succeeded or RunStatus.Failed or RunStatus.Cancelled or RunStatus.TimedOut;

    /// <summary>Whether a step in this status can change no more (within the current run attempt).</summary>
    public static bool IsTerminal(this StepStatus status) =>
        status is StepStatus.Succeeded or StepStatus.Failed or StepStatus.Skipped or StepStatus.Cancelled or StepStatus.TimedOut;

    /// <summary>Whether the step waits for a driver result (or, <c>Running</c>, for its instances or its child run).</summary>
    public static bool IsInFlight(this StepStatus status) => status is StepStatus.Dispatched or StepStatus.Running;

    /// <summary>Whether a run in this status has started and not ended (its steps may be in flight).</summary>
    public static bool IsActive(this RunStatus status) => status is RunStatus.Running or RunStatus.Paused;
}

/// <summary>What a write stored: the object, and whether the write changed nothing (so stored nothing).</summary>
/// <typeparam name="T">The object.</typeparam>
[GenerateSerializer]
[Alias("conveyor.WriteResult`1")]
public sealed class WriteResult<T>
{
    /// <summary>The object as stored now.</summary>
    [Id(0)] public T Value { get; set; } = default!;

    /// <summary>True when the request matched what was stored: no new revision, version or timestamp.</summary>
    [Id(1)] public bool Unchanged { get; set; }
}
