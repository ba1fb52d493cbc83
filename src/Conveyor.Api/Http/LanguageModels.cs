using System.Text.Json;
using System.Text.Json.Serialization;
using Conveyor.Contracts;

namespace Conveyor.Api.Http;

// The pipeline language on the wire: conditions, matrices, finally steps, approval gates, sub-pipelines, pause and
// the run events feed. Kept apart from ApiModels.cs so the fields move together into the shared DTO package.

/// <summary>A pipeline step's language fields.</summary>
public sealed partial record StepDto
{
    /// <summary><c>driver</c> (default), <c>approval</c> (a gate, no driver) or <c>pipeline</c> (implied by <see cref="Pipeline"/>).</summary>
    [JsonPropertyName("type")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Type { get; init; }

    /// <summary>A CEL condition, evaluated when the step becomes ready; false skips the step, and its dependents still run.</summary>
    [JsonPropertyName("when")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? When { get; init; }

    /// <summary>Fan-out: an instance of the step per combination of <c>axes</c>, or per element of a dependency's list.</summary>
    [JsonPropertyName("matrix")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public MatrixDto? Matrix { get; init; }

    /// <summary>An approval step's least role that may decide it: <c>operator</c> (default) or <c>admin</c>.</summary>
    [JsonPropertyName("approvers")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Approvers { get; init; }

    /// <summary>A sub-pipeline step's pipeline: the step starts a run of it (with the step's params) and ends as that run ends.</summary>
    [JsonPropertyName("pipeline")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Pipeline { get; init; }
}

/// <summary>A pipeline's finally steps.</summary>
public sealed partial record PipelineDto
{
    /// <summary>Steps run once every other step has ended, whatever the outcome (a DAG of their own).</summary>
    [JsonPropertyName("finally")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<StepDto?>? Finally { get; init; }
}

/// <summary>A step matrix on the wire.</summary>
public sealed record MatrixDto
{
    /// <summary>Axes: an object of non-empty arrays, e.g. <c>{"os": ["linux", "windows"], "arch": ["x64", "arm64"]}</c>.</summary>
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

/// <summary>A run step's language fields.</summary>
public sealed partial record RunStepDto
{
    /// <summary><c>driver</c>, <c>approval</c> or <c>pipeline</c>.</summary>
    [JsonPropertyName("type")] public string Type { get; init; } = "driver";

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
    public IReadOnlyList<RunStepDto>? Instances { get; init; }

    /// <summary>An approval step's decision.</summary>
    [JsonPropertyName("approval")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public ApprovalDto? Approval { get; init; }

    /// <summary>A sub-pipeline step's child run (of the current run attempt).</summary>
    [JsonPropertyName("childRunId")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public Guid? ChildRunId { get; init; }
}

/// <summary>A run's language fields.</summary>
public sealed partial record RunDto
{
    /// <summary>The run whose sub-pipeline step started this one.</summary>
    [JsonPropertyName("parent")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public ParentRunDto? Parent { get; init; }

    /// <summary>When the run was last paused.</summary>
    [JsonPropertyName("pausedAt")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public DateTimeOffset? PausedAt { get; init; }

    /// <summary>The API key id that last paused the run.</summary>
    [JsonPropertyName("pausedBy")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? PausedBy { get; init; }
}

/// <summary>An approval gate's decision.</summary>
public sealed record ApprovalDto
{
    /// <summary>Approved (true) or rejected.</summary>
    [JsonPropertyName("approved")] public bool Approved { get; init; }

    /// <summary>The API key id that decided; null when authentication is off.</summary>
    [JsonPropertyName("by")] public string? By { get; init; }

    /// <summary>When.</summary>
    [JsonPropertyName("at")] public DateTimeOffset At { get; init; }

    /// <summary>The decider's comment.</summary>
    [JsonPropertyName("comment")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Comment { get; init; }
}

/// <summary>The parent of a child run.</summary>
public sealed record ParentRunDto
{
    /// <summary>The parent run.</summary>
    [JsonPropertyName("runId")] public Guid RunId { get; init; }

    /// <summary>The parent's sub-pipeline step.</summary>
    [JsonPropertyName("step")] public string Step { get; init; } = "";
}

/// <summary>Body of <c>POST /runs/{id}/steps/{step}/approve</c> and <c>/reject</c> (optional).</summary>
public sealed record ApproveStepDto
{
    /// <summary>Why; kept with the decision.</summary>
    [JsonPropertyName("comment")] public string? Comment { get; init; }
}

/// <summary>
/// One run or step transition, as the run events feeds (<c>GET /runs/{id}/events</c>, <c>GET /runs/events</c>) send it:
/// the <c>data</c> of an SSE event of type <c>run</c> or <c>step</c>, whose <c>id</c> resumes the feed after it.
/// </summary>
public sealed record RunEventDto
{
    /// <summary>The run.</summary>
    [JsonPropertyName("runId")] public Guid RunId { get; init; }

    /// <summary>Namespace.</summary>
    [JsonPropertyName("namespace")] public string Namespace { get; init; } = "";

    /// <summary>Pipeline.</summary>
    [JsonPropertyName("pipeline")] public string Pipeline { get; init; } = "";

    /// <summary>The run's transition number: 1, 2, 3… without gaps, so a client sees at once whether it missed one.</summary>
    [JsonPropertyName("sequence")] public long Sequence { get; init; }

    /// <summary>When it happened.</summary>
    [JsonPropertyName("at")] public DateTimeOffset At { get; init; }

    /// <summary>The step (or matrix instance, <c>build[0]</c>) that changed; absent when the run changed.</summary>
    [JsonPropertyName("step")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Step { get; init; }

    /// <summary>The new status.</summary>
    [JsonPropertyName("status")] public string Status { get; init; } = "";

    /// <summary>The previous status.</summary>
    [JsonPropertyName("previous")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Previous { get; init; }

    /// <summary>The step's attempt (0 for the run).</summary>
    [JsonPropertyName("attempt")] public int Attempt { get; init; }

    /// <summary>Why, when there is something to say.</summary>
    [JsonPropertyName("message")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Message { get; init; }

    /// <summary>The run's status after the change.</summary>
    [JsonPropertyName("runStatus")] public RunStatus RunStatus { get; init; }
}
