using System.Text.Json.Serialization;

namespace Conveyor.Client;

/// <summary>A pipeline's retention: how long its finished runs are kept, and how many.</summary>
public sealed record PipelineRetention
{
    /// <summary>How long after it ends a run is kept (<c>7d</c>, <c>168h</c>, <c>7.00:00:00</c>); <c>0</c> keeps runs forever; absent: the default.</summary>
    [JsonPropertyName("period")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Period { get; init; }

    /// <summary>The most finished runs kept, newest first; absent: no cap.</summary>
    [JsonPropertyName("keepLast")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? KeepLast { get; init; }
}

/// <summary>A run read back from the archive (<c>GET /archive/runs/{id}</c>) after retention deleted it.</summary>
public sealed record ArchivedRun
{
    /// <summary>When it was archived (just before it was deleted).</summary>
    [JsonPropertyName("archivedAt")]
    public DateTimeOffset ArchivedAt { get; init; }

    /// <summary>False when the run was too large to archive whole and its attempts were left out.</summary>
    [JsonPropertyName("complete")]
    public bool Complete { get; init; }

    /// <summary>The run as <c>GET /runs/{id}</c> showed it.</summary>
    [JsonPropertyName("run")]
    public RunInfo Run { get; init; } = new();
}
