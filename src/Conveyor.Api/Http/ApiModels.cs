using System.Text.Json;
using System.Text.Json.Serialization;
using Conveyor.Grains.Abstractions;
using Conveyor.Contracts;

namespace Conveyor.Api.Http;

/// <summary>A resource definition on the wire (original field names).</summary>
public sealed record ResourceDefinitionDto
{
    /// <summary>Server-assigned UUID (ignored on input).</summary>
    [JsonPropertyName("id")] public string? Id { get; init; }

    /// <summary>Name: the resource type.</summary>
    [JsonPropertyName("name")] public string? Name { get; init; }

    /// <summary>Free text.</summary>
    [JsonPropertyName("description")] public string? Description { get; init; }

    /// <summary>Free-text version.</summary>
    [JsonPropertyName("version")] public string? Version { get; init; }

    /// <summary>JSON Schema (2020-12 by default) that every resource <c>spec</c> of this type must satisfy.</summary>
    [JsonPropertyName("schema")] public JsonElement? Schema { get; init; }

    internal static ResourceDefinitionDto From(ResourceDefinitionData d) => new()
    {
        Id = d.Id,
        Name = d.Name,
        Description = d.Description,
        Version = d.Version,
        Schema = d.Schema is null ? null : JsonSerializer.Deserialize<JsonElement>(d.Schema),
    };
}

/// <summary>The original's response to <c>POST /resources</c> (keys in alphabetical order, as Go writes maps).</summary>
public sealed record ResourceCreatedDto
{
    /// <summary>Always <c>Resource created successfully</c>.</summary>
    [JsonPropertyName("message")] public string Message { get; init; } = "Resource created successfully";

    /// <summary>Resource name.</summary>
    [JsonPropertyName("name")] public string Name { get; init; } = "";

    /// <summary>Id of the run (or driver event) the creation started.</summary>
    [JsonPropertyName("runid")] public string RunId { get; init; } = "";

    /// <summary>Resource version (<c>1</c>).</summary>
    [JsonPropertyName("version")] public string Version { get; init; } = "1";
}

/// <summary>Retry policy on the wire.</summary>
public sealed record RetryDto
{
    /// <summary>Attempts in total (≥ 1).</summary>
    [JsonPropertyName("maxAttempts")] public int? MaxAttempts { get; init; }

    /// <summary>Delay before the second attempt (<c>"1s"</c>, <c>"500ms"</c>, <c>"00:00:01"</c>).</summary>
    [JsonPropertyName("initialDelay")] public string? InitialDelay { get; init; }

    /// <summary>Upper bound of any delay.</summary>
    [JsonPropertyName("maxDelay")] public string? MaxDelay { get; init; }

    /// <summary>Backoff multiplier (≥ 1).</summary>
    [JsonPropertyName("multiplier")] public double? Multiplier { get; init; }

    /// <summary>Jitter fraction (0–1).</summary>
    [JsonPropertyName("jitter")] public double? Jitter { get; init; }
}

/// <summary>A pipeline step on the wire: the original's <c>{id, name, driver}</c> plus DAG extensions.</summary>
public sealed record StepDto
{
    /// <summary>Step id, unique in the pipeline (defaults to the 1-based position).</summary>
    [JsonPropertyName("id")] public string? Id { get; init; }

    /// <summary>Display name.</summary>
    [JsonPropertyName("name")] public string? Name { get; init; }

    /// <summary>Driver that runs the step.</summary>
    [JsonPropertyName("driver")] public string? Driver { get; init; }

    /// <summary>Steps this one waits for. When no step declares it, each step waits for the one before.</summary>
    [JsonPropertyName("dependsOn")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<string>? DependsOn { get; init; }

    /// <summary>Retry policy of the step.</summary>
    [JsonPropertyName("retry")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public RetryDto? Retry { get; init; }

    /// <summary>Timeout of one attempt.</summary>
    [JsonPropertyName("timeout")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Timeout { get; init; }

    /// <summary>Parameters handed to the driver.</summary>
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
}

/// <summary>A pipeline schedule on the wire.</summary>
public sealed record ScheduleDto
{
    /// <summary>Name, unique in the pipeline (default <c>schedule-{n}</c>).</summary>
    [JsonPropertyName("name")] public string? Name { get; init; }

    /// <summary>Cron expression: 5 fields, or 6 with seconds first.</summary>
    [JsonPropertyName("cron")] public string? Cron { get; init; }

    /// <summary>Time zone (IANA id), default UTC.</summary>
    [JsonPropertyName("timeZone")] public string? TimeZone { get; init; }

    /// <summary>Resource each run is for.</summary>
    [JsonPropertyName("resource")] public string? Resource { get; init; }

    /// <summary>Run priority 1–5 (default 3).</summary>
    [JsonPropertyName("priority")] public int? Priority { get; init; }

    /// <summary><c>fireOnce</c> (default): one run for the latest missed occurrence; <c>skip</c>: none.</summary>
    [JsonPropertyName("missedFire")] public string? MissedFire { get; init; }
}

/// <summary>A pipeline webhook on the wire.</summary>
public sealed record WebhookDto
{
    /// <summary>Name: the last segment of <c>/hooks/{namespace}/{pipeline}/{name}</c>.</summary>
    [JsonPropertyName("name")] public string? Name { get; init; }

    /// <summary>HMAC-SHA256 key (input only; omitted on output; omitted on input keeps the stored one).</summary>
    [JsonPropertyName("secret")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Secret { get; init; }

    /// <summary>Resource fields from JSON pointers into the body (<c>name</c>, <c>spec.a.b</c>, <c>metadata.k</c>).</summary>
    [JsonPropertyName("resource")] public Dictionary<string, string>? Resource { get; init; }

    /// <summary>Run priority 1–5 (default 3).</summary>
    [JsonPropertyName("priority")] public int? Priority { get; init; }

    /// <summary>The hook's path (output only).</summary>
    [JsonPropertyName("url")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Url { get; init; }
}

/// <summary>A pipeline's concurrency group on the wire.</summary>
public sealed record ConcurrencyGroupDto
{
    /// <summary>Key path over the run's resource: <c>name</c>, <c>type</c>, <c>metadata.x</c>, <c>spec.a.b</c>.</summary>
    [JsonPropertyName("key")] public string? Key { get; init; }

    /// <summary><c>queue</c> (default): a newer run waits; <c>cancel-in-progress</c>: it cancels the older ones.</summary>
    [JsonPropertyName("onConflict")] public string? OnConflict { get; init; }
}

/// <summary>A pipeline on the wire: the original's shape plus DAG, retry and timeout extensions.</summary>
public sealed record PipelineDto
{
    /// <summary>Name.</summary>
    [JsonPropertyName("name")] public string? Name { get; init; }

    /// <summary>Free text.</summary>
    [JsonPropertyName("description")] public string? Description { get; init; }

    /// <summary>Free-text version.</summary>
    [JsonPropertyName("version")] public string? Version { get; init; }

    /// <summary>Resource type the pipeline runs for.</summary>
    [JsonPropertyName("resource")] public string? Resource { get; init; }

    /// <summary>Steps.</summary>
    [JsonPropertyName("steps")] public IReadOnlyList<StepDto?>? Steps { get; init; }

    /// <summary>Free metadata.</summary>
    [JsonPropertyName("metadata")] public Dictionary<string, string>? Metadata { get; init; }

    /// <summary>Timeout of a whole run.</summary>
    [JsonPropertyName("timeout")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Timeout { get; init; }

    /// <summary><c>failFast</c> (default) or <c>continue</c>.</summary>
    [JsonPropertyName("failurePolicy")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? FailurePolicy { get; init; }

    /// <summary>Default retry policy of the steps.</summary>
    [JsonPropertyName("retry")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public RetryDto? Retry { get; init; }

    /// <summary>Plain variables handed to every step's driver as <c>variables</c> (not secret).</summary>
    [JsonPropertyName("variables")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public Dictionary<string, string>? Variables { get; init; }

    /// <summary>Most runs active at once; further runs queue (priority, then arrival).</summary>
    [JsonPropertyName("concurrency")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? Concurrency { get; init; }

    /// <summary>One active run per value of a key over the resource.</summary>
    [JsonPropertyName("concurrencyGroup")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public ConcurrencyGroupDto? ConcurrencyGroup { get; init; }

    /// <summary>Cron schedules that start runs.</summary>
    [JsonPropertyName("schedules")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<ScheduleDto?>? Schedules { get; init; }

    /// <summary>Webhooks that start runs; secrets are write-only.</summary>
    [JsonPropertyName("webhooks")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<WebhookDto?>? Webhooks { get; init; }

    /// <summary>How long finished runs are kept (<c>period</c>) and how many (<c>keepLast</c>).</summary>
    [JsonPropertyName("retention")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public RetentionDto? Retention { get; init; }

    /// <summary>Server-assigned revision (output only).</summary>
    [JsonPropertyName("revision")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public int Revision { get; init; }
}

/// <summary>One attempt of a step.</summary>
public sealed record AttemptDto
{
    /// <summary>1-based attempt number.</summary>
    [JsonPropertyName("number")] public int Number { get; init; }

    /// <summary>When the engine decided to dispatch it.</summary>
    [JsonPropertyName("dispatchedAt")] public DateTimeOffset DispatchedAt { get; init; }

    /// <summary>When JetStream accepted the dispatch (null while the step waits for its driver).</summary>
    [JsonPropertyName("publishedAt")] public DateTimeOffset? PublishedAt { get; init; }

    /// <summary>When the attempt ended.</summary>
    [JsonPropertyName("finishedAt")] public DateTimeOffset? FinishedAt { get; init; }

    /// <summary>The driver's verdict.</summary>
    [JsonPropertyName("success")] public bool? Success { get; init; }

    /// <summary>The driver's message or the engine's reason.</summary>
    [JsonPropertyName("message")] public string Message { get; init; } = "";

    /// <summary>The driver's data.</summary>
    [JsonPropertyName("data")] public JsonElement? Data { get; init; }

    /// <summary>Whether the attempt ended because its timeout expired.</summary>
    [JsonPropertyName("timedOut")] public bool TimedOut { get; init; }

    /// <summary>When the driver last reported progress (a heartbeat), if it did.</summary>
    [JsonPropertyName("lastHeartbeatAt")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public DateTimeOffset? LastHeartbeatAt { get; init; }
}

/// <summary>A step of a run.</summary>
public sealed record RunStepDto
{
    /// <summary>Step id.</summary>
    [JsonPropertyName("id")] public string Id { get; init; } = "";

    /// <summary>Display name.</summary>
    [JsonPropertyName("name")] public string Name { get; init; } = "";

    /// <summary>Driver.</summary>
    [JsonPropertyName("driver")] public string Driver { get; init; } = "";

    /// <summary>Dependencies (normalised).</summary>
    [JsonPropertyName("dependsOn")] public IReadOnlyList<string> DependsOn { get; init; } = [];

    /// <summary>Status.</summary>
    [JsonPropertyName("status")]
    public StepStatus Status { get; init; }

    /// <summary>Current attempt number (0 before the first dispatch).</summary>
    [JsonPropertyName("attempt")] public int Attempt { get; init; }

    /// <summary>True while the step is dispatched but no consumer for its driver exists yet.</summary>
    [JsonPropertyName("waitingForDriver")] public bool WaitingForDriver { get; init; }

    /// <summary>Message of the current attempt.</summary>
    [JsonPropertyName("message")] public string Message { get; init; } = "";

    /// <summary>Output (<c>data</c> of the successful attempt).</summary>
    [JsonPropertyName("data")] public JsonElement? Data { get; init; }

    /// <summary>When the next attempt is due (status <c>Retrying</c>).</summary>
    [JsonPropertyName("nextAttemptAt")] public DateTimeOffset? NextAttemptAt { get; init; }

    /// <summary>When the current attempt times out.</summary>
    [JsonPropertyName("deadlineAt")] public DateTimeOffset? DeadlineAt { get; init; }

    /// <summary>Every attempt, oldest first.</summary>
    [JsonPropertyName("attempts")] public IReadOnlyList<AttemptDto> Attempts { get; init; } = [];
}

/// <summary>A pipeline run.</summary>
public sealed record RunDto
{
    /// <summary>Run id.</summary>
    [JsonPropertyName("id")] public Guid Id { get; init; }

    /// <summary>Namespace.</summary>
    [JsonPropertyName("namespace")] public string Namespace { get; init; } = "";

    /// <summary>Pipeline name.</summary>
    [JsonPropertyName("pipeline")] public string Pipeline { get; init; } = "";

    /// <summary>The pipeline's free-text version when the run started.</summary>
    [JsonPropertyName("pipelineVersion")] public string PipelineVersion { get; init; } = "";

    /// <summary>The pipeline's revision when the run started.</summary>
    [JsonPropertyName("pipelineRevision")] public int PipelineRevision { get; init; }

    /// <summary>Resource type.</summary>
    [JsonPropertyName("resourceType")] public string ResourceType { get; init; } = "";

    /// <summary>Resource name.</summary>
    [JsonPropertyName("resourceName")] public string ResourceName { get; init; } = "";

    /// <summary>Status.</summary>
    [JsonPropertyName("status")]
    public RunStatus Status { get; init; }

    /// <summary>Why the run ended the way it did.</summary>
    [JsonPropertyName("message")] public string Message { get; init; } = "";

    /// <summary>Creation time.</summary>
    [JsonPropertyName("createdAt")] public DateTimeOffset CreatedAt { get; init; }

    /// <summary>Start time.</summary>
    [JsonPropertyName("startedAt")] public DateTimeOffset? StartedAt { get; init; }

    /// <summary>End time.</summary>
    [JsonPropertyName("finishedAt")] public DateTimeOffset? FinishedAt { get; init; }

    /// <summary>1, plus one per retry of the run.</summary>
    [JsonPropertyName("runAttempt")] public int RunAttempt { get; init; }

    /// <summary>Priority 1–5 (higher first).</summary>
    [JsonPropertyName("priority")] public int Priority { get; init; }

    /// <summary>What started the run: <c>resource</c>, <c>manual</c>, <c>schedule:&lt;name&gt;</c>, <c>webhook:&lt;name&gt;</c>.</summary>
    [JsonPropertyName("trigger")] public string Trigger { get; init; } = "";

    /// <summary>The trigger event: a schedule's occurrence, a webhook's delivery id, a manual idempotency key.</summary>
    [JsonPropertyName("triggerId")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? TriggerId { get; init; }

    /// <summary>Run parameters given by the trigger, merged over each step's <c>params</c>.</summary>
    [JsonPropertyName("params")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public JsonElement? Params { get; init; }

    /// <summary>When the run times out.</summary>
    [JsonPropertyName("deadlineAt")] public DateTimeOffset? DeadlineAt { get; init; }

    /// <summary>When retention deletes the finished run; absent while it runs or when it is kept forever.</summary>
    [JsonPropertyName("expiresAt")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public DateTimeOffset? ExpiresAt { get; init; }

    /// <summary>1-based position in its queue while the run is <c>Queued</c>.</summary>
    [JsonPropertyName("queuePosition")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? QueuePosition { get; init; }

    /// <summary>Steps in pipeline order.</summary>
    [JsonPropertyName("steps")] public IReadOnlyList<RunStepDto> Steps { get; init; } = [];

    internal static RunDto From(RunState run, int? queuePosition = null)
    {
        var specs = run.Plan.Pipeline.Steps.ToDictionary(s => s.Id, StringComparer.Ordinal);
        return new RunDto
        {
            Id = run.RunId,
            Namespace = run.Plan.Namespace,
            Pipeline = run.Plan.Pipeline.Name,
            PipelineVersion = run.Plan.Pipeline.Version,
            PipelineRevision = run.Plan.Pipeline.Revision,
            ResourceType = run.Plan.Resource.Type,
            ResourceName = run.Plan.Resource.Name,
            Status = run.Status,
            Message = run.Message,
            CreatedAt = run.CreatedAt,
            StartedAt = run.StartedAt,
            FinishedAt = run.FinishedAt,
            RunAttempt = run.RunAttempt,
            Priority = run.Plan.Priority,
            QueuePosition = run.Status == RunStatus.Queued ? queuePosition : null,
            Trigger = run.Plan.Trigger,
            TriggerId = run.Plan.TriggerId,
            Params = Json(run.Plan.Params),
            DeadlineAt = run.DeadlineAt,
            ExpiresAt = run.ExpiresAt,
            Steps = run.Steps.Select(s =>
            {
                var spec = specs[s.Id];
                var current = s.Current;
                return new RunStepDto
                {
                    Id = s.Id,
                    Name = spec.Name,
                    Driver = spec.Driver,
                    DependsOn = spec.DependsOn,
                    Status = s.Status,
                    Attempt = current?.Number ?? 0,
                    WaitingForDriver = s.Status.IsInFlight() && current is { Published: false },
                    Message = current?.Message ?? "",
                    Data = Json(s.Output),
                    NextAttemptAt = s.NextAttemptAt,
                    DeadlineAt = s.DeadlineAt,
                    Attempts = s.Attempts.Select(a => new AttemptDto
                    {
                        Number = a.Number,
                        DispatchedAt = a.DispatchedAt,
                        PublishedAt = a.PublishedAt,
                        FinishedAt = a.FinishedAt,
                        Success = a.Success,
                        Message = a.Message,
                        Data = Json(a.Data),
                        TimedOut = a.TimedOut,
                        LastHeartbeatAt = a.LastHeartbeatAt,
                    }).ToList(),
                };
            }).ToList(),
        };
    }

    private static JsonElement? Json(string? raw) => raw is null ? null : JsonSerializer.Deserialize<JsonElement>(raw);
}

/// <summary>A run in a listing.</summary>
public sealed record RunSummaryDto
{
    /// <summary>Run id.</summary>
    [JsonPropertyName("id")] public Guid Id { get; init; }

    /// <summary>Namespace.</summary>
    [JsonPropertyName("namespace")] public string Namespace { get; init; } = "";

    /// <summary>Pipeline name.</summary>
    [JsonPropertyName("pipeline")] public string Pipeline { get; init; } = "";

    /// <summary>Pipeline revision the run executes.</summary>
    [JsonPropertyName("pipelineRevision")] public int PipelineRevision { get; init; }

    /// <summary>Resource type.</summary>
    [JsonPropertyName("resourceType")] public string ResourceType { get; init; } = "";

    /// <summary>Resource name.</summary>
    [JsonPropertyName("resourceName")] public string ResourceName { get; init; } = "";

    /// <summary>Status.</summary>
    [JsonPropertyName("status")]
    public RunStatus Status { get; init; }

    /// <summary>Creation time.</summary>
    [JsonPropertyName("createdAt")] public DateTimeOffset CreatedAt { get; init; }

    /// <summary>End time.</summary>
    [JsonPropertyName("finishedAt")] public DateTimeOffset? FinishedAt { get; init; }

    /// <summary>Why the run ended the way it did.</summary>
    [JsonPropertyName("message")] public string Message { get; init; } = "";

    /// <summary>When retention deletes the finished run, if it does.</summary>
    [JsonPropertyName("expiresAt")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public DateTimeOffset? ExpiresAt { get; init; }

    internal static RunSummaryDto From(RunSummary s) => new()
    {
        Id = s.RunId,
        Namespace = s.Namespace,
        Pipeline = s.Pipeline,
        PipelineRevision = s.PipelineRevision,
        ResourceType = s.ResourceType,
        ResourceName = s.ResourceName,
        Status = s.Status,
        CreatedAt = s.CreatedAt,
        FinishedAt = s.FinishedAt,
        Message = s.Message,
        ExpiresAt = s.ExpiresAt,
    };
}

/// <summary>A page of runs, newest first.</summary>
public sealed record RunPageDto
{
    /// <summary>The runs on this page.</summary>
    [JsonPropertyName("items")] public IReadOnlyList<RunSummaryDto> Items { get; init; } = [];

    /// <summary>Pass as <c>cursor</c> to get the next page; null on the last page.</summary>
    [JsonPropertyName("nextCursor")] public string? NextCursor { get; init; }
}

/// <summary>One run in a queue listing.</summary>
public sealed record QueueEntryDto
{
    /// <summary>Run id.</summary>
    [JsonPropertyName("id")] public Guid Id { get; init; }

    /// <summary>Priority 1–5.</summary>
    [JsonPropertyName("priority")] public int Priority { get; init; }

    /// <summary>Concurrency group value, if the pipeline has groups.</summary>
    [JsonPropertyName("group")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Group { get; init; }

    /// <summary>1-based position in the queue (queued runs only).</summary>
    [JsonPropertyName("position")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? Position { get; init; }

    /// <summary>When the run asked for a slot.</summary>
    [JsonPropertyName("queuedAt")] public DateTimeOffset QueuedAt { get; init; }

    internal static QueueEntryDto From(Conveyor.Grains.Flow.QueuedRun q, int? position) => new()
    {
        Id = q.RunId,
        Priority = q.Priority,
        Group = q.Group,
        Position = position,
        QueuedAt = q.QueuedAt,
    };
}

/// <summary>Body of <c>GET /pipelines/{name}/queue</c>.</summary>
public sealed record QueueDto
{
    /// <summary>The pipeline's limit, or null.</summary>
    [JsonPropertyName("concurrency")] public int? Concurrency { get; init; }

    /// <summary>The namespace's limit, or null.</summary>
    [JsonPropertyName("namespaceLimit")] public int? NamespaceLimit { get; init; }

    /// <summary>Active runs of the whole namespace, when it has a limit.</summary>
    [JsonPropertyName("namespaceActive")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? NamespaceActive { get; init; }

    /// <summary>The pipeline's runs holding a slot.</summary>
    [JsonPropertyName("active")] public IReadOnlyList<QueueEntryDto> Active { get; init; } = [];

    /// <summary>The pipeline's waiting runs, in admission order (positions count the whole queue).</summary>
    [JsonPropertyName("queued")] public IReadOnlyList<QueueEntryDto> Queued { get; init; } = [];
}

/// <summary>Body of <c>POST /pipelines/{name}/runs</c>: start a run of the pipeline for an existing resource.</summary>
public sealed record TriggerRunDto
{
    /// <summary>Name of the resource (of the pipeline's resource type) the run is for.</summary>
    [JsonPropertyName("resource")] public string? Resource { get; init; }

    /// <summary>Priority 1–5, higher first (default 3); matters when the pipeline or namespace queues runs.</summary>
    [JsonPropertyName("priority")] public int? Priority { get; init; }

    /// <summary>A JSON object merged over each step's <c>params</c> (the run's keys win).</summary>
    [JsonPropertyName("params")] public JsonElement? Params { get; init; }
}

/// <summary>Body of <c>POST /runs/{id}/cancel</c> (optional).</summary>
public sealed record CancelRunDto
{
    /// <summary>Why the run is cancelled; shown on the run and sent to its drivers.</summary>
    [JsonPropertyName("reason")] public string? Reason { get; init; }
}

/// <summary>Body of <c>GET /health</c> (the original's shape).</summary>
public sealed record HealthDto
{
    /// <summary>Always <c>healthy</c>.</summary>
    [JsonPropertyName("status")] public string Status { get; init; } = "healthy";

    /// <summary>Server time, Unix seconds.</summary>
    [JsonPropertyName("time")] public long Time { get; init; }
}
