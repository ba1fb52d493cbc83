using System.Text.Json;
using System.Text.Json.Serialization;

namespace Conveyor.Client;

/// <summary>
/// A resource type: a name and the JSON Schema every resource <c>spec</c> of that type must satisfy. The body of
/// <c>POST /resource-definitions</c>, <c>/resource-definitions/apply</c> and <c>PUT /resource-definitions/{name}</c>,
/// and what they and <c>GET</c> answer (the original's field names and order).
/// </summary>
public sealed record ResourceDefinition
{
    /// <summary>Server-assigned UUID; ignored on input.</summary>
    [JsonPropertyName("id")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Id { get; init; }

    /// <summary>Name of the type (a DNS label).</summary>
    [JsonPropertyName("name")]
    public string Name { get; init; } = "";

    /// <summary>Free-text description.</summary>
    [JsonPropertyName("description")]
    public string Description { get; init; } = "";

    /// <summary>Free-text version.</summary>
    [JsonPropertyName("version")]
    public string Version { get; init; } = "";

    /// <summary>JSON Schema (2020-12 by default) for the <c>spec</c> of resources of this type.</summary>
    [JsonPropertyName("schema")]
    public JsonElement? Schema { get; init; }

    /// <summary>
    /// Output only: true when a write found the definition exactly as stored and stored nothing (not even a new timestamp).
    /// Omitted when false.
    /// </summary>
    [JsonPropertyName("unchanged")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool Unchanged { get; init; }
}

/// <summary>A page of <c>GET /resource-definitions</c>, by name.</summary>
public sealed record ResourceDefinitionPage
{
    /// <summary>The definitions on this page.</summary>
    [JsonPropertyName("items")]
    public IReadOnlyList<ResourceDefinition> Items { get; init; } = [];

    /// <summary>Pass as <c>cursor</c> to get the next page; null on the last page.</summary>
    [JsonPropertyName("nextCursor")]
    public string? NextCursor { get; init; }
}
