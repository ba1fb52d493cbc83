using System.Text.Json;
using System.Text.Json.Serialization;

namespace Conveyor.Contracts;

/// <summary>Event names used in <see cref="DriverMessage.Event"/> and <see cref="PipelineEvent.Event"/>.</summary>
public static class EventNames
{
    /// <summary>First delivery of a resource: a resource without a pipeline, or the first step of a run.</summary>
    public const string Create = "create";

    /// <summary>Delivery of a later pipeline step.</summary>
    public const string Process = "process";

    /// <summary>A driver's result (<see cref="PipelineEvent"/> on <see cref="Subjects.DriverResult"/>).</summary>
    public const string DriverResult = "driver.result";
}

/// <summary>
/// A resource instance as it travels on the wire and over the original HTTP routes. Field names and order are the
/// original's (<c>id, name, pipeline, resource, metadata, spec</c>).
/// </summary>
public sealed record Resource
{
    /// <summary>Server-assigned UUID.</summary>
    [JsonPropertyName("id")]
    public string Id { get; init; } = "";

    /// <summary>Name, unique per resource type in a namespace.</summary>
    [JsonPropertyName("name")]
    public string Name { get; init; } = "";

    /// <summary>Pipeline started when the resource is created; omitted when empty.</summary>
    [JsonPropertyName("pipeline")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public string? Pipeline { get; init; }

    /// <summary>Name of the resource definition (the resource type).</summary>
    [JsonPropertyName("resource")]
    public string ResourceType { get; init; } = "";

    /// <summary>String-to-string metadata; the server manages <c>version</c> and <c>driverresults.&lt;driver&gt;</c>.</summary>
    [JsonPropertyName("metadata")]
    public IDictionary<string, string>? Metadata { get; init; }

    /// <summary>The resource's specification, validated against its definition's JSON Schema.</summary>
    [JsonPropertyName("spec")]
    public JsonElement? Spec { get; init; }

    /// <summary>
    /// HTTP only, output only: true when an update found the resource exactly as stored and stored nothing (no new
    /// version). Never written when false, so messages to drivers never carry it.
    /// </summary>
    [JsonPropertyName("unchanged")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool Unchanged { get; init; }
}

/// <summary>
/// What a driver receives on <c>resources.{type}</c> or <c>drivers.{driver}.resources.{type}</c>. <see cref="Payload"/>
/// is a JSON <em>string</em> holding the resource JSON, exactly as the original engine sends it.
/// </summary>
public sealed record DriverMessage
{
    /// <summary><c>create</c> or <c>process</c> (see <see cref="EventNames"/>).</summary>
    [JsonPropertyName("event")]
    public string Event { get; init; } = "";

    /// <summary>The resource, serialized to a JSON string.</summary>
    [JsonPropertyName("payload")]
    public string Payload { get; init; } = "";

    /// <summary>Message id: 24 lowercase hex characters.</summary>
    [JsonPropertyName("id")]
    public string Id { get; init; } = "";

    /// <summary>Run id (UUID) the message belongs to.</summary>
    [JsonPropertyName("run_id")]
    public string RunId { get; init; } = "";

    /// <summary>Extension: id of the pipeline step (absent for resources without pipeline). Original drivers ignore it.</summary>
    [JsonPropertyName("step")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Step { get; init; }

    /// <summary>Extension: 1-based attempt number of the step.</summary>
    [JsonPropertyName("attempt")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? Attempt { get; init; }

    /// <summary>
    /// Extension: a short-lived token that lets the driver fetch the secrets its step references, for this attempt
    /// only, from the API (<c>GET /step-secrets</c>). Never the values themselves. Original drivers ignore it.
    /// </summary>
    [JsonPropertyName("step_token")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? StepToken { get; init; }

    /// <summary>Extension: the pipeline's plain variables.</summary>
    [JsonPropertyName("variables")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyDictionary<string, string>? Variables { get; init; }

    /// <summary>Extension: the step's <c>params</c> object from the pipeline definition.</summary>
    [JsonPropertyName("params")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public JsonElement? Params { get; init; }

    /// <summary>
    /// Extension: the <c>data</c> output of each direct dependency that succeeded, keyed by step id
    /// (a dependency that failed with <c>allowFailure</c> is absent).
    /// </summary>
    [JsonPropertyName("inputs")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IDictionary<string, JsonElement>? Inputs { get; init; }
}

/// <summary>
/// Tells a driver to stop working on a step (the run was cancelled, timed out, failed fast, or the attempt timed out).
/// Sent on core NATS <see cref="Subjects.Cancel"/>; best effort, since a late result is ignored by the engine anyway.
/// </summary>
public sealed record CancelMessage
{
    /// <summary>Run id.</summary>
    [JsonPropertyName("run_id")]
    public string RunId { get; init; } = "";

    /// <summary>Step id.</summary>
    [JsonPropertyName("step")]
    public string Step { get; init; } = "";

    /// <summary>Attempt being cancelled.</summary>
    [JsonPropertyName("attempt")]
    public int Attempt { get; init; }

    /// <summary>Driver running the step.</summary>
    [JsonPropertyName("driver")]
    public string Driver { get; init; } = "";

    /// <summary>Why.</summary>
    [JsonPropertyName("reason")]
    public string Reason { get; init; } = "";
}

/// <summary>
/// A driver is still working on the attempts it lists (the SDK sends one per heartbeat tick on core NATS
/// <see cref="Subjects.Heartbeat"/>): the engine keeps those attempts alive for a lease instead of cutting them at the
/// default attempt timeout. Not part of the original protocol; drivers that send none get the default timeout.
/// </summary>
public sealed record HeartbeatMessage
{
    /// <summary>Driver sending it.</summary>
    [JsonPropertyName("driver")]
    public string Driver { get; init; } = "";

    /// <summary>How often the driver sends heartbeats, in milliseconds (the engine's lease is at least three of them); 0 when unknown.</summary>
    [JsonPropertyName("interval_ms")]
    public long IntervalMs { get; init; }

    /// <summary>The attempts in progress.</summary>
    [JsonPropertyName("attempts")]
    public IReadOnlyList<HeartbeatAttempt> Attempts { get; init; } = [];
}

/// <summary>One attempt a <see cref="HeartbeatMessage"/> keeps alive.</summary>
public sealed record HeartbeatAttempt
{
    /// <summary>Run id.</summary>
    [JsonPropertyName("run_id")]
    public string RunId { get; init; } = "";

    /// <summary>Step id.</summary>
    [JsonPropertyName("step")]
    public string Step { get; init; } = "";

    /// <summary>Attempt number.</summary>
    [JsonPropertyName("attempt")]
    public int Attempt { get; init; }
}

/// <summary>A driver's verdict on one message, with the driver's name (the original's <c>DriverResultEvent</c>).</summary>
public sealed record DriverResultEvent
{
    /// <summary>Whether the driver reconciled the resource.</summary>
    [JsonPropertyName("success")]
    public bool Success { get; init; }

    /// <summary>Human-readable outcome.</summary>
    [JsonPropertyName("message")]
    public string Message { get; init; } = "";

    /// <summary>Output data; downstream steps receive it.</summary>
    [JsonPropertyName("data")]
    public JsonElement? Data { get; init; }

    /// <summary>Name of the reporting driver.</summary>
    [JsonPropertyName("driver")]
    public string Driver { get; init; } = "";
}

/// <summary>Body of every message on <c>pipelines.&gt;</c>: a pipeline start or a driver result.</summary>
public sealed record PipelineEvent
{
    /// <summary><c>create</c> (pipeline start) or <c>driver.result</c>.</summary>
    [JsonPropertyName("event")]
    public string Event { get; init; } = "";

    /// <summary>Run id the event belongs to.</summary>
    [JsonPropertyName("run_id")]
    public string RunId { get; init; } = "";

    /// <summary>The resource the run is for, as an object.</summary>
    [JsonPropertyName("resource")]
    public Resource? Resource { get; init; }

    /// <summary>The driver's result (zero value on a start event; the key is one lowercase word, as in the original).</summary>
    [JsonPropertyName("driverresult")]
    public DriverResultEvent DriverResult { get; init; } = new();
}

/// <summary>A driver log entry as published on <c>logs.{runid}</c> and <c>live.logs.{runid}.{driver}</c>.</summary>
public sealed record LogEntry
{
    /// <summary>Run id.</summary>
    [JsonPropertyName("runid")]
    public string RunId { get; init; } = "";

    /// <summary>Driver that wrote the entry.</summary>
    [JsonPropertyName("driver")]
    public string Driver { get; init; } = "";

    /// <summary>Pipeline name, when the driver knows it.</summary>
    [JsonPropertyName("pipeline")]
    public string Pipeline { get; init; } = "";

    /// <summary>RFC 3339 timestamp (opaque to the original; drivers write various formats).</summary>
    [JsonPropertyName("timestamp")]
    public string Timestamp { get; init; } = "";

    /// <summary>The log line.</summary>
    [JsonPropertyName("message")]
    public string Message { get; init; } = "";

    /// <summary>Structured labels (step, attempt, level, …); absent in the original's entries.</summary>
    [JsonPropertyName("labels")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IDictionary<string, string>? Labels { get; init; }
}
