using System.Text.Json;
using System.Text.Json.Serialization;
using Conveyor.Contracts;

namespace Conveyor.Client;

/// <summary>A run as returned by <c>GET /runs/{id}</c>, a trigger, a cancel or a retry.</summary>
public sealed record RunInfo
{
    /// <summary>Run id.</summary>
    [JsonPropertyName("id")]
    public Guid Id { get; init; }

    /// <summary>Namespace of the run.</summary>
    [JsonPropertyName("namespace")]
    public string Namespace { get; init; } = "";

    /// <summary>Pipeline name.</summary>
    [JsonPropertyName("pipeline")]
    public string Pipeline { get; init; } = "";

    /// <summary>Pipeline version (free text) when the run started.</summary>
    [JsonPropertyName("pipelineVersion")]
    public string PipelineVersion { get; init; } = "";

    /// <summary>Pipeline revision the run executes.</summary>
    [JsonPropertyName("pipelineRevision")]
    public int PipelineRevision { get; init; }

    /// <summary>Type of the resource the run is for.</summary>
    [JsonPropertyName("resourceType")]
    public string ResourceType { get; init; } = "";

    /// <summary>Name of the resource the run is for.</summary>
    [JsonPropertyName("resourceName")]
    public string ResourceName { get; init; } = "";

    /// <summary>Run status.</summary>
    [JsonPropertyName("status")]
    public RunStatus Status { get; init; }

    /// <summary>Why the run is in its status.</summary>
    [JsonPropertyName("message")]
    public string Message { get; init; } = "";

    /// <summary>When the run was created.</summary>
    [JsonPropertyName("createdAt")]
    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>When the first step was dispatched.</summary>
    [JsonPropertyName("startedAt")]
    public DateTimeOffset? StartedAt { get; init; }

    /// <summary>When the run ended.</summary>
    [JsonPropertyName("finishedAt")]
    public DateTimeOffset? FinishedAt { get; init; }

    /// <summary>1, plus one per retry of the run.</summary>
    [JsonPropertyName("runAttempt")]
    public int RunAttempt { get; init; }

    /// <summary>Priority 1–5 (higher first).</summary>
    [JsonPropertyName("priority")]
    public int Priority { get; init; }

    /// <summary>What started the run: <c>resource</c>, <c>manual</c>, <c>schedule:&lt;name&gt;</c> or <c>webhook:&lt;name&gt;</c>.</summary>
    [JsonPropertyName("trigger")]
    public string Trigger { get; init; } = "";

    /// <summary>The trigger event: a schedule's occurrence, a webhook's delivery id, a manual idempotency key.</summary>
    [JsonPropertyName("triggerId")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? TriggerId { get; init; }

    /// <summary>The API key (id) that started the run — a manual trigger, or the creation of its resource — when one did.</summary>
    [JsonPropertyName("triggeredBy")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? TriggeredBy { get; init; }

    /// <summary>The API key (id) that cancelled the run, when one did.</summary>
    [JsonPropertyName("cancelledBy")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? CancelledBy { get; init; }

    /// <summary>The API key (id) that last retried the run, when one did.</summary>
    [JsonPropertyName("retriedBy")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? RetriedBy { get; init; }

    /// <summary>Run parameters given by the trigger, merged over each step's <c>params</c>.</summary>
    [JsonPropertyName("params")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public JsonElement? Params { get; init; }

    /// <summary>When the run times out.</summary>
    [JsonPropertyName("deadlineAt")]
    public DateTimeOffset? DeadlineAt { get; init; }

    /// <summary>When retention deletes the finished run; absent while it runs or when it is kept forever.</summary>
    [JsonPropertyName("expiresAt")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public DateTimeOffset? ExpiresAt { get; init; }

    /// <summary>1-based position in its queue while the run is <c>Queued</c>.</summary>
    [JsonPropertyName("queuePosition")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? QueuePosition { get; init; }

    /// <summary>Steps in pipeline order (finally steps last).</summary>
    [JsonPropertyName("steps")]
    public IReadOnlyList<StepInfo> Steps { get; init; } = [];

    /// <summary>The run whose sub-pipeline step started this one.</summary>
    [JsonPropertyName("parent")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public ParentRun? Parent { get; init; }

    /// <summary>When the run was last paused.</summary>
    [JsonPropertyName("pausedAt")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public DateTimeOffset? PausedAt { get; init; }

    /// <summary>The API key id that last paused the run.</summary>
    [JsonPropertyName("pausedBy")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? PausedBy { get; init; }

    /// <summary>Whether <see cref="Status"/> is final.</summary>
    [JsonIgnore]
    public bool IsFinished => Status is RunStatus.Succeeded or RunStatus.Failed or RunStatus.Cancelled or RunStatus.TimedOut;
}

/// <summary>One step of a <see cref="RunInfo"/>.</summary>
public sealed record StepInfo
{
    /// <summary>Step id.</summary>
    [JsonPropertyName("id")]
    public string Id { get; init; } = "";

    /// <summary>Display name.</summary>
    [JsonPropertyName("name")]
    public string Name { get; init; } = "";

    /// <summary>Driver that runs the step.</summary>
    [JsonPropertyName("driver")]
    public string Driver { get; init; } = "";

    /// <summary>Ids of the steps this one waits for (normalised: the original's linear order made explicit).</summary>
    [JsonPropertyName("dependsOn")]
    public IReadOnlyList<string> DependsOn { get; init; } = [];

    /// <summary>Step status.</summary>
    [JsonPropertyName("status")]
    public StepStatus Status { get; init; }

    /// <summary>Current attempt number (0 before the first dispatch).</summary>
    [JsonPropertyName("attempt")]
    public int Attempt { get; init; }

    /// <summary>Whether the step is dispatched but no consumer of its driver exists yet.</summary>
    [JsonPropertyName("waitingForDriver")]
    public bool WaitingForDriver { get; init; }

    /// <summary>Message of the current attempt.</summary>
    [JsonPropertyName("message")]
    public string Message { get; init; } = "";

    /// <summary>Output: <c>data</c> of the successful attempt.</summary>
    [JsonPropertyName("data")]
    public JsonElement? Data { get; init; }

    /// <summary>When the next attempt is due (status <c>Retrying</c>).</summary>
    [JsonPropertyName("nextAttemptAt")]
    public DateTimeOffset? NextAttemptAt { get; init; }

    /// <summary>When the current attempt times out.</summary>
    [JsonPropertyName("deadlineAt")]
    public DateTimeOffset? DeadlineAt { get; init; }

    /// <summary>Every attempt, oldest first.</summary>
    [JsonPropertyName("attempts")]
    public IReadOnlyList<AttemptInfo> Attempts { get; init; } = [];

    /// <summary><c>driver</c>, <c>approval</c> or <c>pipeline</c>.</summary>
    [JsonPropertyName("type")]
    public string Type { get; init; } = "driver";

    /// <summary>Whether it is one of the pipeline's finally steps.</summary>
    [JsonPropertyName("finally")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool Finally { get; init; }

    /// <summary>Why a <c>Skipped</c> step was skipped: <c>condition</c> (it counts as done), <c>dependency</c> or <c>run-ended</c>.</summary>
    [JsonPropertyName("skipReason")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? SkipReason { get; init; }

    /// <summary>What the engine says about the step when no attempt says it (a skip, a condition or a matrix that failed it).</summary>
    [JsonPropertyName("reason")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Reason { get; init; }

    /// <summary>A matrix instance's combination (what its driver got as <c>params.matrix</c>).</summary>
    [JsonPropertyName("matrix")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public JsonElement? Matrix { get; init; }

    /// <summary>A matrix step's instances (ids <c>{step}[{n}]</c>), each with its own status and attempts.</summary>
    [JsonPropertyName("instances")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<StepInfo>? Instances { get; init; }

    /// <summary>An approval step's decision: approved or not, by which API key, when, and why.</summary>
    [JsonPropertyName("approval")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public StepApproval? Approval { get; init; }

    /// <summary>A sub-pipeline step's child run (of the current run attempt).</summary>
    [JsonPropertyName("childRunId")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public Guid? ChildRunId { get; init; }
}

/// <summary>One attempt of a <see cref="StepInfo"/>.</summary>
public sealed record AttemptInfo
{
    /// <summary>Attempt number, starting at 1.</summary>
    [JsonPropertyName("number")]
    public int Number { get; init; }

    /// <summary>When the engine decided to dispatch the attempt.</summary>
    [JsonPropertyName("dispatchedAt")]
    public DateTimeOffset DispatchedAt { get; init; }

    /// <summary>When JetStream stored the dispatch (null while the step waits for its driver).</summary>
    [JsonPropertyName("publishedAt")]
    public DateTimeOffset? PublishedAt { get; init; }

    /// <summary>When the attempt's result arrived (or it timed out).</summary>
    [JsonPropertyName("finishedAt")]
    public DateTimeOffset? FinishedAt { get; init; }

    /// <summary>The driver's verdict, once known.</summary>
    [JsonPropertyName("success")]
    public bool? Success { get; init; }

    /// <summary>The driver's message or the engine's reason.</summary>
    [JsonPropertyName("message")]
    public string Message { get; init; } = "";

    /// <summary>The driver's data.</summary>
    [JsonPropertyName("data")]
    public JsonElement? Data { get; init; }

    /// <summary>Whether the attempt ended because its timeout expired.</summary>
    [JsonPropertyName("timedOut")]
    public bool TimedOut { get; init; }

    /// <summary>When the driver last reported progress on the attempt (a heartbeat), if it did.</summary>
    [JsonPropertyName("lastHeartbeatAt")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public DateTimeOffset? LastHeartbeatAt { get; init; }
}

/// <summary>A run in a listing.</summary>
public sealed record RunSummaryInfo
{
    /// <summary>Run id.</summary>
    [JsonPropertyName("id")]
    public Guid Id { get; init; }

    /// <summary>Namespace.</summary>
    [JsonPropertyName("namespace")]
    public string Namespace { get; init; } = "";

    /// <summary>Pipeline name.</summary>
    [JsonPropertyName("pipeline")]
    public string Pipeline { get; init; } = "";

    /// <summary>Pipeline revision the run executes.</summary>
    [JsonPropertyName("pipelineRevision")]
    public int PipelineRevision { get; init; }

    /// <summary>Resource type.</summary>
    [JsonPropertyName("resourceType")]
    public string ResourceType { get; init; } = "";

    /// <summary>Resource name.</summary>
    [JsonPropertyName("resourceName")]
    public string ResourceName { get; init; } = "";

    /// <summary>Status.</summary>
    [JsonPropertyName("status")]
    public RunStatus Status { get; init; }

    /// <summary>Creation time.</summary>
    [JsonPropertyName("createdAt")]
    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>End time.</summary>
    [JsonPropertyName("finishedAt")]
    public DateTimeOffset? FinishedAt { get; init; }

    /// <summary>Why the run ended the way it did.</summary>
    [JsonPropertyName("message")]
    public string Message { get; init; } = "";

    /// <summary>When retention deletes the finished run, if it does.</summary>
    [JsonPropertyName("expiresAt")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public DateTimeOffset? ExpiresAt { get; init; }
}

/// <summary>A page of runs, newest first.</summary>
public sealed record RunPage
{
    /// <summary>Runs on this page.</summary>
    [JsonPropertyName("items")]
    public IReadOnlyList<RunSummaryInfo> Items { get; init; } = [];

    /// <summary>Pass as <c>cursor</c> to get the next page; null on the last page.</summary>
    [JsonPropertyName("nextCursor")]
    public string? NextCursor { get; init; }
}

/// <summary>Body of <c>POST /pipelines/{name}/runs</c>: start a run of the pipeline for an existing resource.</summary>
public sealed record TriggerRunRequest
{
    /// <summary>Name of the resource (of the pipeline's resource type) the run is for.</summary>
    [JsonPropertyName("resource")]
    public string Resource { get; init; } = "";

    /// <summary>Priority 1–5, higher first; null lets the server use 3.</summary>
    [JsonPropertyName("priority")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? Priority { get; init; }

    /// <summary>A JSON object merged over each step's <c>params</c> (the run's keys win).</summary>
    [JsonPropertyName("params")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public JsonElement? Params { get; init; }
}

/// <summary>Body of <c>POST /runs/{id}/cancel</c> (optional).</summary>
public sealed record CancelRunRequest
{
    /// <summary>Why the run is cancelled; shown on the run and sent to its drivers.</summary>
    [JsonPropertyName("reason")]
    public string? Reason { get; init; }
}

/// <summary>Body of <c>GET /pipelines/{name}/queue</c>.</summary>
public sealed record PipelineQueue
{
    /// <summary>The pipeline's limit, or null.</summary>
    [JsonPropertyName("concurrency")]
    public int? Concurrency { get; init; }

    /// <summary>The namespace's limit, or null.</summary>
    [JsonPropertyName("namespaceLimit")]
    public int? NamespaceLimit { get; init; }

    /// <summary>Active runs of the whole namespace, when it has a limit.</summary>
    [JsonPropertyName("namespaceActive")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? NamespaceActive { get; init; }

    /// <summary>The pipeline's runs holding a slot.</summary>
    [JsonPropertyName("active")]
    public IReadOnlyList<QueueEntry> Active { get; init; } = [];

    /// <summary>The pipeline's waiting runs, in admission order (positions count the whole queue).</summary>
    [JsonPropertyName("queued")]
    public IReadOnlyList<QueueEntry> Queued { get; init; } = [];
}

/// <summary>One run in a <see cref="PipelineQueue"/>.</summary>
public sealed record QueueEntry
{
    /// <summary>Run id.</summary>
    [JsonPropertyName("id")]
    public Guid Id { get; init; }

    /// <summary>Priority 1–5.</summary>
    [JsonPropertyName("priority")]
    public int Priority { get; init; }

    /// <summary>Concurrency group value, if the pipeline has groups.</summary>
    [JsonPropertyName("group")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Group { get; init; }

    /// <summary>1-based position in the queue (queued runs only).</summary>
    [JsonPropertyName("position")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? Position { get; init; }

    /// <summary>When the run asked for a slot.</summary>
    [JsonPropertyName("queuedAt")]
    public DateTimeOffset QueuedAt { get; init; }
}

/// <summary>The answer to a webhook delivery (<c>POST /hooks/{namespace}/{pipeline}/{hook}</c>).</summary>
public sealed record WebhookRunResponse
{
    /// <summary>The run the delivery started (or started earlier, for a redelivery).</summary>
    [JsonPropertyName("runid")]
    public Guid RunId { get; init; }

    /// <summary>The run's status now.</summary>
    [JsonPropertyName("status")]
    public RunStatus Status { get; init; }

    /// <summary>False for a redelivery: nothing new was started.</summary>
    [JsonPropertyName("created")]
    public bool Created { get; init; }

    /// <summary>The delivery id the run was keyed by, if the sender gave one.</summary>
    [JsonPropertyName("delivery")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Delivery { get; init; }
}
