using System.Text.Json.Serialization;
using Conveyor.Contracts;

namespace Conveyor.Client;

// The original's log entry (POST /logs, GET /logs) is Conveyor.Contracts.LogEntry: the same shape as on NATS.

/// <summary>One stored entry of a run's log: the original's fields, its sequence number and its labels.</summary>
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

    /// <summary>Labels such as <c>step</c>, <c>attempt</c> and <c>level</c>; omitted when none.</summary>
    [JsonPropertyName("labels")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyDictionary<string, string>? Labels { get; init; }
}

/// <summary>A page of a run's log, oldest first.</summary>
public sealed record LogPage
{
    /// <summary>Entries on this page, in store order.</summary>
    [JsonPropertyName("items")]
    public IReadOnlyList<LogLine> Items { get; init; } = [];

    /// <summary>Pass as <c>after</c> to read on; null when nothing more is stored yet.</summary>
    [JsonPropertyName("nextCursor")]
    public string? NextCursor { get; init; }
}

/// <summary>Data of the <c>end</c> event of a followed run log (<c>GET /runs/{id}/logs/stream</c>).</summary>
public sealed record LogEnd
{
    /// <summary>The run's final status.</summary>
    [JsonPropertyName("status")]
    public RunStatus Status { get; init; }
}
