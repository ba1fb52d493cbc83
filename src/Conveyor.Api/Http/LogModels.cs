using System.Text.Json.Serialization;
using Conveyor.Grains.Logs;

namespace Conveyor.Api.Http;

/// <summary>One stored log entry: the original's fields, its sequence number and its labels.</summary>
public sealed record LogItemDto
{
    /// <summary>Position in the log store; the cursor and SSE event id.</summary>
    [JsonPropertyName("seq")] public ulong Seq { get; init; }

    /// <summary>Run id.</summary>
    [JsonPropertyName("runid")] public string RunId { get; init; } = "";

    /// <summary>Driver that wrote the entry.</summary>
    [JsonPropertyName("driver")] public string Driver { get; init; } = "";

    /// <summary>Pipeline name, when the driver knows it.</summary>
    [JsonPropertyName("pipeline")] public string Pipeline { get; init; } = "";

    /// <summary>The driver's timestamp, as written.</summary>
    [JsonPropertyName("timestamp")] public string Timestamp { get; init; } = "";

    /// <summary>The log line.</summary>
    [JsonPropertyName("message")] public string Message { get; init; } = "";

    /// <summary>Labels (step, attempt, level, …), absent when none.</summary>
    [JsonPropertyName("labels")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IDictionary<string, string>? Labels { get; init; }

    internal static LogItemDto From(StoredLogEntry stored) => new()
    {
        Seq = stored.Sequence,
        RunId = stored.Entry.RunId,
        Driver = stored.Entry.Driver,
        Pipeline = stored.Entry.Pipeline,
        Timestamp = stored.Entry.Timestamp,
        Message = stored.Entry.Message,
        Labels = stored.Entry.Labels,
    };
}

/// <summary>A page of a run's log.</summary>
public sealed record LogPageDto
{
    /// <summary>Entries in store order.</summary>
    [JsonPropertyName("items")] public IReadOnlyList<LogItemDto> Items { get; init; } = [];

    /// <summary>Pass as <c>after</c> to read on; null when nothing more is stored yet.</summary>
    [JsonPropertyName("nextCursor")] public string? NextCursor { get; init; }
}

/// <summary>Body of the <c>end</c> event of a followed run log.</summary>
public sealed record LogEndDto
{
    /// <summary>The run's final status.</summary>
    [JsonPropertyName("status")] public string Status { get; init; } = "";
}
