using System.Text.Json.Serialization;
using Conveyor.Contracts;

namespace Conveyor.Client;

/// <summary>An approval gate's decision (<see cref="StepInfo.Approval"/>).</summary>
public sealed record StepApproval
{
    /// <summary>Approved (true) or rejected.</summary>
    [JsonPropertyName("approved")]
    public bool Approved { get; init; }

    /// <summary>The API key id that decided; null when authentication is off.</summary>
    [JsonPropertyName("by")]
    public string? By { get; init; }

    /// <summary>When.</summary>
    [JsonPropertyName("at")]
    public DateTimeOffset At { get; init; }

    /// <summary>The decider's comment.</summary>
    [JsonPropertyName("comment")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Comment { get; init; }
}

/// <summary>The parent of a child run (<see cref="RunInfo.Parent"/>).</summary>
public sealed record ParentRun
{
    /// <summary>The parent run.</summary>
    [JsonPropertyName("runId")]
    public Guid RunId { get; init; }

    /// <summary>The parent's sub-pipeline step.</summary>
    [JsonPropertyName("step")]
    public string Step { get; init; } = "";
}

/// <summary>Body of <c>POST /runs/{id}/steps/{step}/approve</c> and <c>/reject</c> (optional).</summary>
public sealed record ApprovalRequest
{
    /// <summary>Why; kept with the decision.</summary>
    [JsonPropertyName("comment")]
    public string? Comment { get; init; }
}

/// <summary>
/// One run or step transition, as the run events feeds (<c>GET /runs/{id}/events</c>, <c>GET /runs/events</c>) send it:
/// the <c>data</c> of a Server-Sent Event of type <c>run</c> or <c>step</c>.
/// </summary>
public sealed record RunEvent
{
    /// <summary>The SSE id of the event: pass it back as <c>Last-Event-ID</c> to resume after it (not part of the data).</summary>
    [JsonIgnore]
    public string? EventId { get; init; }

    /// <summary>The run.</summary>
    [JsonPropertyName("runId")]
    public Guid RunId { get; init; }

    /// <summary>Namespace.</summary>
    [JsonPropertyName("namespace")]
    public string Namespace { get; init; } = "";

    /// <summary>Pipeline.</summary>
    [JsonPropertyName("pipeline")]
    public string Pipeline { get; init; } = "";

    /// <summary>The run's transition number: 1, 2, 3… without gaps, so a client sees at once whether it missed one.</summary>
    [JsonPropertyName("sequence")]
    public long Sequence { get; init; }

    /// <summary>When it happened.</summary>
    [JsonPropertyName("at")]
    public DateTimeOffset At { get; init; }

    /// <summary>The step (or matrix instance, <c>build[0]</c>) that changed; null when the run changed.</summary>
    [JsonPropertyName("step")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Step { get; init; }

    /// <summary>The new status (a <see cref="RunStatus"/> or <see cref="StepStatus"/> name).</summary>
    [JsonPropertyName("status")]
    public string Status { get; init; } = "";

    /// <summary>The previous status.</summary>
    [JsonPropertyName("previous")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Previous { get; init; }

    /// <summary>The step's attempt (0 for the run).</summary>
    [JsonPropertyName("attempt")]
    public int Attempt { get; init; }

    /// <summary>Why, when there is something to say (an attempt's message, a skip's reason, why the run ended).</summary>
    [JsonPropertyName("message")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Message { get; init; }

    /// <summary>The run's status right after the change.</summary>
    [JsonPropertyName("runStatus")]
    public RunStatus RunStatus { get; init; }
}
