using System.Text.Json;
using System.Text.Json.Serialization;
using Conveyor.Contracts;

namespace Conveyor.Driver.Sdk.Client;

/// <summary>A resource type: a name and the JSON Schema every resource <c>spec</c> of that type must satisfy.</summary>
public sealed record ResourceDefinition
{
    /// <summary>Server-assigned UUID; ignored on create.</summary>
    [JsonPropertyName("id")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Id { get; init; }

    /// <summary>Name of the type.</summary>
    [JsonPropertyName("name")]
    public string Name { get; init; } = "";

    /// <summary>Free-text description.</summary>
    [JsonPropertyName("description")]
    public string Description { get; init; } = "";

    /// <summary>Free-text version.</summary>
    [JsonPropertyName("version")]
    public string Version { get; init; } = "";

    /// <summary>JSON Schema (2020-12) for the <c>spec</c> of resources of this type.</summary>
    [JsonPropertyName("schema")]
    public JsonElement? Schema { get; init; }
}

/// <summary>A pipeline: steps run by drivers for resources of one type.</summary>
public sealed record Pipeline
{
    /// <summary>Name of the pipeline.</summary>
    [JsonPropertyName("name")]
    public string Name { get; init; } = "";

    /// <summary>Free-text description.</summary>
    [JsonPropertyName("description")]
    public string Description { get; init; } = "";

    /// <summary>Free-text version.</summary>
    [JsonPropertyName("version")]
    public string Version { get; init; } = "";

    /// <summary>Resource type (definition name) the pipeline runs for.</summary>
    [JsonPropertyName("resource")]
    public string Resource { get; init; } = "";

    /// <summary>Steps; without any <c>dependsOn</c> they run in order, each after the one before.</summary>
    [JsonPropertyName("steps")]
    public IReadOnlyList<PipelineStep> Steps { get; init; } = [];

    /// <summary>String metadata.</summary>
    [JsonPropertyName("metadata")]
    public IReadOnlyDictionary<string, string>? Metadata { get; init; }
}

/// <summary>One step of a <see cref="Pipeline"/>.</summary>
public sealed record PipelineStep
{
    /// <summary>Step id, unique in the pipeline.</summary>
    [JsonPropertyName("id")]
    public string Id { get; init; } = "";

    /// <summary>Display name.</summary>
    [JsonPropertyName("name")]
    public string Name { get; init; } = "";

    /// <summary>Driver that runs the step.</summary>
    [JsonPropertyName("driver")]
    public string Driver { get; init; } = "";

    /// <summary>Ids of the steps that must succeed first; omitted for the original's linear pipelines.</summary>
    [JsonPropertyName("dependsOn")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<string>? DependsOn { get; init; }
}

/// <summary>Body of <c>POST /resources</c>.</summary>
public sealed record CreateResourceRequest
{
    /// <summary>Resource name, unique per type.</summary>
    [JsonPropertyName("name")]
    public string Name { get; init; } = "";

    /// <summary>Resource type (definition name).</summary>
    [JsonPropertyName("resource")]
    public string ResourceType { get; init; } = "";

    /// <summary>Pipeline to run for the resource; <c>null</c> sends it to every driver of its type instead.</summary>
    [JsonPropertyName("pipeline")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Pipeline { get; init; }

    /// <summary>The specification, validated against the type's schema.</summary>
    [JsonPropertyName("spec")]
    public JsonElement? Spec { get; init; }
}

/// <summary>Response of <c>POST /resources</c>.</summary>
public sealed record CreateResourceResponse
{
    /// <summary><c>Resource created successfully</c>.</summary>
    [JsonPropertyName("message")]
    public string Message { get; init; } = "";

    /// <summary>Name of the created resource.</summary>
    [JsonPropertyName("name")]
    public string Name { get; init; } = "";

    /// <summary>Id of the run the creation started.</summary>
    [JsonPropertyName("runid")]
    public Guid RunId { get; init; }

    /// <summary>Resource version, <c>1</c> on creation.</summary>
    [JsonPropertyName("version")]
    public string Version { get; init; } = "";
}

/// <summary>A run as returned by <c>GET /runs/{id}</c>.</summary>
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

    /// <summary>Pipeline version (free text) at the start of the run.</summary>
    [JsonPropertyName("pipelineVersion")]
    public string PipelineVersion { get; init; } = "";

    /// <summary>Pipeline revision the run uses.</summary>
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

    /// <summary>Steps in pipeline order.</summary>
    [JsonPropertyName("steps")]
    public IReadOnlyList<StepInfo> Steps { get; init; } = [];

    /// <summary>1, plus one per retry of the run.</summary>
    [JsonPropertyName("runAttempt")]
    public int RunAttempt { get; init; }

    /// <summary>Priority 1–5 (higher first).</summary>
    [JsonPropertyName("priority")]
    public int Priority { get; init; }

    /// <summary>What started the run: <c>resource</c>, <c>manual</c>, <c>schedule:&lt;name&gt;</c> or <c>webhook:&lt;name&gt;</c>.</summary>
    [JsonPropertyName("trigger")]
    public string Trigger { get; init; } = "";

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

    /// <summary>Ids of the steps this one waits for.</summary>
    [JsonPropertyName("dependsOn")]
    public IReadOnlyList<string> DependsOn { get; init; } = [];

    /// <summary>Step status.</summary>
    [JsonPropertyName("status")]
    public StepStatus Status { get; init; }

    /// <summary>Current attempt number (0 before the first dispatch).</summary>
    [JsonPropertyName("attempt")]
    public int Attempt { get; init; }

    /// <summary>Whether the step is ready but no consumer of its driver exists yet.</summary>
    [JsonPropertyName("waitingForDriver")]
    public bool WaitingForDriver { get; init; }

    /// <summary>Message of the latest result.</summary>
    [JsonPropertyName("message")]
    public string Message { get; init; } = "";

    /// <summary>Output of the successful attempt.</summary>
    [JsonPropertyName("data")]
    public JsonElement? Data { get; init; }

    /// <summary>Every attempt, oldest first.</summary>
    [JsonPropertyName("attempts")]
    public IReadOnlyList<AttemptInfo> Attempts { get; init; } = [];
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

    /// <summary>When JetStream stored the dispatch.</summary>
    [JsonPropertyName("publishedAt")]
    public DateTimeOffset? PublishedAt { get; init; }

    /// <summary>When the attempt's result arrived (or it timed out).</summary>
    [JsonPropertyName("finishedAt")]
    public DateTimeOffset? FinishedAt { get; init; }

    /// <summary>The driver's verdict, once known.</summary>
    [JsonPropertyName("success")]
    public bool? Success { get; init; }

    /// <summary>The driver's message.</summary>
    [JsonPropertyName("message")]
    public string Message { get; init; } = "";

    /// <summary>The driver's data.</summary>
    [JsonPropertyName("data")]
    public JsonElement? Data { get; init; }

    /// <summary>Whether the attempt ended because its timeout expired.</summary>
    [JsonPropertyName("timedOut")]
    public bool TimedOut { get; init; }
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
}

/// <summary>A page of runs, newest first.</summary>
public sealed record RunPage
{
    /// <summary>Runs on this page.</summary>
    [JsonPropertyName("items")]
    public IReadOnlyList<RunSummaryInfo> Items { get; init; } = [];

    /// <summary>Cursor of the next page; null on the last one.</summary>
    [JsonPropertyName("nextCursor")]
    public string? NextCursor { get; init; }
}

/// <summary>Body of <c>POST /pipelines/{name}/runs</c>.</summary>
public sealed record TriggerRunRequest
{
    /// <summary>Name of the resource (of the pipeline's resource type) the run is for.</summary>
    [JsonPropertyName("resource")]
    public string Resource { get; init; } = "";

    /// <summary>Priority 1–5, higher first; null lets the server use 3.</summary>
    [JsonPropertyName("priority")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? Priority { get; init; }

    /// <summary>A JSON object merged over each step's <c>params</c>.</summary>
    [JsonPropertyName("params")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public JsonElement? Params { get; init; }
}

/// <summary>Body of a cancel request.</summary>
public sealed record CancelRunRequest
{
    /// <summary>Why the run is cancelled.</summary>
    [JsonPropertyName("reason")]
    public string? Reason { get; init; }
}

/// <summary>One entry of a run's log.</summary>
public sealed record LogLine
{
    /// <summary>Position in the engine's log store: the paging cursor and the SSE event id.</summary>
    [JsonPropertyName("seq")]
    public ulong Seq { get; init; }

    /// <summary>Run id.</summary>
    [JsonPropertyName("runid")]
    public string RunId { get; init; } = "";

    /// <summary>Driver that wrote the entry.</summary>
    [JsonPropertyName("driver")]
    public string Driver { get; init; } = "";

    /// <summary>Pipeline name, when the driver knew it.</summary>
    [JsonPropertyName("pipeline")]
    public string Pipeline { get; init; } = "";

    /// <summary>The driver's timestamp, as written.</summary>
    [JsonPropertyName("timestamp")]
    public string Timestamp { get; init; } = "";

    /// <summary>The log line.</summary>
    [JsonPropertyName("message")]
    public string Message { get; init; } = "";

    /// <summary>Labels such as <c>step</c>, <c>attempt</c> and <c>level</c>; null when none.</summary>
    [JsonPropertyName("labels")]
    public IReadOnlyDictionary<string, string>? Labels { get; init; }
}

/// <summary>A page of a run's log, oldest first.</summary>
public sealed record LogPage
{
    /// <summary>Entries on this page.</summary>
    [JsonPropertyName("items")]
    public IReadOnlyList<LogLine> Items { get; init; } = [];

    /// <summary>Pass as <c>after</c> to read on; null when nothing more is stored yet.</summary>
    [JsonPropertyName("nextCursor")]
    public string? NextCursor { get; init; }
}

/// <summary>Source-generated serializer metadata for the HTTP client.</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(ResourceDefinition))]
[JsonSerializable(typeof(Pipeline))]
[JsonSerializable(typeof(CreateResourceRequest))]
[JsonSerializable(typeof(CreateResourceResponse))]
[JsonSerializable(typeof(Conveyor.Contracts.Resource))]
[JsonSerializable(typeof(RunInfo))]
[JsonSerializable(typeof(RunPage))]
[JsonSerializable(typeof(CancelRunRequest))]
[JsonSerializable(typeof(TriggerRunRequest))]
[JsonSerializable(typeof(LogLine))]
[JsonSerializable(typeof(LogPage))]
[JsonSerializable(typeof(JsonElement))]
internal sealed partial class ClientJsonContext : JsonSerializerContext;
