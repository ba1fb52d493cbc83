using System.Text.Json.Serialization;

namespace Conveyor.Client;

/// <summary>
/// Every error answer of the API: RFC 7807 problem details (<c>application/problem+json</c>) with a stable
/// <see cref="Type"/> (<c>urn:conveyor:problem:validation</c>, <c>not-found</c>, <c>conflict</c>, …) and the
/// original Conveyor's <see cref="Error"/> member. <see cref="ConveyorApiException"/> carries the same fields.
/// </summary>
public sealed record ConveyorProblem
{
    /// <summary>Stable problem type URI, e.g. <c>urn:conveyor:problem:not-found</c>.</summary>
    [JsonPropertyName("type")]
    public string Type { get; init; } = "";

    /// <summary>Short summary of the problem type.</summary>
    [JsonPropertyName("title")]
    public string Title { get; init; } = "";

    /// <summary>HTTP status.</summary>
    [JsonPropertyName("status")]
    public int Status { get; init; }

    /// <summary>What went wrong in this request.</summary>
    [JsonPropertyName("detail")]
    public string Detail { get; init; } = "";

    /// <summary>The original's error member: the same text as <see cref="Detail"/>.</summary>
    [JsonPropertyName("error")]
    public string Error { get; init; } = "";

    /// <summary>Validation problems only: the messages by field at fault (<c>spec.image</c>, <c>steps[1].dependsOn</c>, <c>limit</c>).</summary>
    [JsonPropertyName("errors")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyDictionary<string, string[]>? Errors { get; init; }
}
