using System.ComponentModel.DataAnnotations;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Conveyor.Client;

/// <summary>
/// A pipeline: steps run by drivers for resources of one type. The original's shape
/// (<c>name, description, version, resource, steps, metadata</c>) plus the DAG, retry, timeout, flow-control and
/// trigger extensions, each omitted when unset. The body of <c>POST /pipelines</c> and <c>PUT /pipelines/{name}</c>,
/// and what they and <c>GET</c> answer.
/// </summary>
public sealed record Pipeline
{
    /// <summary>Name of the pipeline (a DNS label).</summary>
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

    /// <summary>Steps run once every other step has ended, whatever the outcome (a DAG of their own; <c>run.status</c> tells their conditions how the run went).</summary>
    [JsonPropertyName("finally")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<PipelineStep>? Finally { get; init; }

    /// <summary>String metadata; null when none was sent (written as <c>null</c>, like the original).</summary>
    [JsonPropertyName("metadata")]
    public IReadOnlyDictionary<string, string>? Metadata { get; init; }

    /// <summary>Timeout of a whole run (<c>30m</c>, <c>1h30m</c>, <c>00:30:00</c>); the run ends TimedOut.</summary>
    [JsonPropertyName("timeout")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Timeout { get; init; }

    /// <summary><c>failFast</c> (default) or <c>continue</c>: what the rest of a run does when a step fails for good.</summary>
    [JsonPropertyName("failurePolicy")]
    [AllowedValues("failFast", "continue", null)]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? FailurePolicy { get; init; }

    /// <summary>Default retry policy of the steps that declare none.</summary>
    [JsonPropertyName("retry")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public RetrySettings? Retry { get; init; }

    /// <summary>Plain variables handed to every step's driver as <c>variables</c> (not secret: viewers read them).</summary>
    [JsonPropertyName("variables")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyDictionary<string, string>? Variables { get; init; }

    /// <summary>Most runs of this pipeline active at once; further runs queue (priority, then arrival).</summary>
    [JsonPropertyName("concurrency")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? Concurrency { get; init; }

    /// <summary>At most one active run per value of a key over the run's resource.</summary>
    [JsonPropertyName("concurrencyGroup")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public ConcurrencyGroup? ConcurrencyGroup { get; init; }

    /// <summary>Cron schedules that start runs.</summary>
    [JsonPropertyName("schedules")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<PipelineSchedule>? Schedules { get; init; }

    /// <summary>Webhooks that start runs; their secrets are write-only.</summary>
    [JsonPropertyName("webhooks")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<PipelineWebhook>? Webhooks { get; init; }

    /// <summary>The step <c>params</c> keys a manual trigger may set in its run's <c>params</c>; none when absent.</summary>
    [JsonPropertyName("overridableParams")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<string>? OverridableParams { get; init; }
    /// <summary>How long the pipeline's finished runs are kept, and how many; absent: the server's default.</summary>
    [JsonPropertyName("retention")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public PipelineRetention? Retention { get; init; }

    /// <summary>Output only: the server-assigned revision, incremented by every write that changes the pipeline.</summary>
    [JsonPropertyName("revision")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public int Revision { get; init; }

    /// <summary>
    /// Output only: true when a write found the pipeline exactly as stored and stored nothing (the revision stays).
    /// Omitted when false.
    /// </summary>
    [JsonPropertyName("unchanged")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool Unchanged { get; init; }
}

/// <summary>One step of a <see cref="Pipeline"/>: the original's <c>{id, name, driver}</c> plus DAG extensions.</summary>
public sealed record PipelineStep
{
    /// <summary>Step id, unique in the pipeline (defaults to the 1-based position).</summary>
    [JsonPropertyName("id")]
    public string Id { get; init; } = "";

    /// <summary>Display name.</summary>
    [JsonPropertyName("name")]
    public string Name { get; init; } = "";

    /// <summary>Driver that runs the step.</summary>
    [JsonPropertyName("driver")]
    public string Driver { get; init; } = "";

    /// <summary>Ids of the steps this one waits for; omitted for the original's linear pipelines.</summary>
    [JsonPropertyName("dependsOn")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<string>? DependsOn { get; init; }

    /// <summary>Retry policy of the step (else the pipeline's).</summary>
    [JsonPropertyName("retry")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public RetrySettings? Retry { get; init; }

    /// <summary>Timeout of one attempt (<c>10m</c>); a timeout counts as a failed attempt.</summary>
    [JsonPropertyName("timeout")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Timeout { get; init; }

    /// <summary>A JSON object handed to the driver as the dispatch's <c>params</c>.</summary>
    [JsonPropertyName("params")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public JsonElement? Params { get; init; }

    /// <summary>Whether the run may succeed although this step failed.</summary>
    [JsonPropertyName("allowFailure")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool AllowFailure { get; init; }

    /// <summary>Names of namespace secrets the step's driver may fetch; they must exist when the pipeline is stored.</summary>
    [JsonPropertyName("secrets")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<string>? Secrets { get; init; }

    /// <summary><c>driver</c> (default), <c>approval</c> (a gate that waits for a user, no driver) or <c>pipeline</c> (implied by <see cref="Pipeline"/>).</summary>
    [JsonPropertyName("type")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Type { get; init; }

    /// <summary>
    /// A CEL condition, evaluated when the step becomes ready over <c>params</c>, <c>inputs</c>, <c>steps</c>,
    /// <c>resource</c>, <c>trigger</c> and <c>run</c>; false skips the step, and its dependents still run.
    /// </summary>
    [JsonPropertyName("when")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? When { get; init; }

    /// <summary>Fan-out: an instance of the step per combination of axes, or per element of a dependency's list.</summary>
    [JsonPropertyName("matrix")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public StepMatrix? Matrix { get; init; }

    /// <summary>An approval step's least role that may decide it: <c>operator</c> (default) or <c>admin</c>.</summary>
    [JsonPropertyName("approvers")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Approvers { get; init; }

    /// <summary>A sub-pipeline step's pipeline: the step starts a run of it (with the step's params) and ends as that run ends.</summary>
    [JsonPropertyName("pipeline")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Pipeline { get; init; }
}

/// <summary>A step's matrix: <see cref="Axes"/> or <see cref="FromInput"/>.</summary>
public sealed record StepMatrix
{
    /// <summary>Axes: an object of non-empty lists, e.g. <c>{"os": ["linux", "windows"], "arch": ["x64", "arm64"]}</c>; the combinations are their product.</summary>
    [JsonPropertyName("axes")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public JsonElement? Axes { get; init; }

    /// <summary>Most instances in flight at once.</summary>
    [JsonPropertyName("maxParallel")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? MaxParallel { get; init; }

    /// <summary><c>&lt;step id&gt;.&lt;field&gt;</c>: a list in the output of a dependency, one instance per element.</summary>
    [JsonPropertyName("fromInput")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? FromInput { get; init; }
}

/// <summary>A retry policy: exponential backoff with jitter. Unset members take the server's defaults.</summary>
public sealed record RetrySettings
{
    /// <summary>Attempts in total, the first included (≥ 1).</summary>
    [JsonPropertyName("maxAttempts")]
    public int? MaxAttempts { get; init; }

    /// <summary>Delay before the second attempt (<c>1s</c>, <c>500ms</c>, <c>00:00:01</c>).</summary>
    [JsonPropertyName("initialDelay")]
    public string? InitialDelay { get; init; }

    /// <summary>Upper bound of any delay.</summary>
    [JsonPropertyName("maxDelay")]
    public string? MaxDelay { get; init; }

    /// <summary>Factor applied to the delay after each attempt (≥ 1).</summary>
    [JsonPropertyName("multiplier")]
    public double? Multiplier { get; init; }

    /// <summary>Random fraction (0–1) added to or taken from each delay.</summary>
    [JsonPropertyName("jitter")]
    public double? Jitter { get; init; }
}

/// <summary>A cron schedule of a <see cref="Pipeline"/>.</summary>
public sealed record PipelineSchedule
{
    /// <summary>Name, unique in the pipeline (default <c>schedule-{n}</c>).</summary>
    [JsonPropertyName("name")]
    public string? Name { get; init; }

    /// <summary>Cron expression: 5 fields, or 6 with seconds first.</summary>
    [JsonPropertyName("cron")]
    public string? Cron { get; init; }

    /// <summary>IANA time zone the expression is read in (default UTC).</summary>
    [JsonPropertyName("timeZone")]
    public string? TimeZone { get; init; }

    /// <summary>Name of the resource each run is for.</summary>
    [JsonPropertyName("resource")]
    public string? Resource { get; init; }

    /// <summary>Run priority 1–5 (default 3).</summary>
    [JsonPropertyName("priority")]
    public int? Priority { get; init; }

    /// <summary><c>fireOnce</c> (default): one run for the latest missed occurrence; <c>skip</c>: none.</summary>
    [JsonPropertyName("missedFire")]
    [AllowedValues("fireOnce", "skip", null)]
    public string? MissedFire { get; init; }
}

/// <summary>A webhook of a <see cref="Pipeline"/>: <c>POST /hooks/{namespace}/{pipeline}/{name}</c>.</summary>
public sealed record PipelineWebhook
{
    /// <summary>Name: the last segment of the hook's path.</summary>
    [JsonPropertyName("name")]
    public string? Name { get; init; }

    /// <summary>
    /// HMAC-SHA256 key of the delivery signature, at least 32 characters. Write-only: never returned, and kept
    /// encrypted apart from the pipeline; omitted on a write, the stored key of the hook of the same name is kept.
    /// </summary>
    [JsonPropertyName("secret")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Secret { get; init; }

    /// <summary>Resource fields from JSON pointers into the body: <c>name</c>, <c>spec.a.b</c>, <c>metadata.k</c>.</summary>
    [JsonPropertyName("resource")]
    public IReadOnlyDictionary<string, string>? Resource { get; init; }

    /// <summary>Run priority 1–5 (default 3).</summary>
    [JsonPropertyName("priority")]
    public int? Priority { get; init; }

    /// <summary>Accept only timestamped signatures (<c>X-Conveyor-Timestamp</c>, <c>X-Conveyor-Signature-256</c>).</summary>
    [JsonPropertyName("requireTimestamp")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool RequireTimestamp { get; init; }

    /// <summary>Output only: the hook's path.</summary>
    [JsonPropertyName("url")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Url { get; init; }
}

/// <summary>A pipeline's concurrency group: runs whose resources give the same key value run one at a time.</summary>
public sealed record ConcurrencyGroup
{
    /// <summary>Key path over the run's resource: <c>name</c>, <c>type</c>, <c>metadata.x</c>, <c>spec.a.b</c>.</summary>
    [JsonPropertyName("key")]
    public string? Key { get; init; }

    /// <summary><c>queue</c> (default): a newer run waits; <c>cancel-in-progress</c>: it cancels the older ones.</summary>
    [JsonPropertyName("onConflict")]
    [AllowedValues("queue", "cancel-in-progress", null)]
    public string? OnConflict { get; init; }
}

/// <summary>A page of <c>GET /pipelines</c>, by name.</summary>
public sealed record PipelinePage
{
    /// <summary>The pipelines on this page.</summary>
    [JsonPropertyName("items")]
    public IReadOnlyList<Pipeline> Items { get; init; } = [];

    /// <summary>Pass as <c>cursor</c> to get the next page; null on the last page.</summary>
    [JsonPropertyName("nextCursor")]
    public string? NextCursor { get; init; }
}
