using System.Text.Json;
using System.Text.Json.Serialization;

namespace Conveyor.Client;

// A resource itself travels as Conveyor.Contracts.Resource (the same shape on NATS and over HTTP).

/// <summary>Body of <c>POST /resources</c>.</summary>
public sealed record CreateResourceRequest
{
    /// <summary>Resource name, unique per type.</summary>
    [JsonPropertyName("name")]
    public string Name { get; init; } = "";

    /// <summary>Resource type (definition name).</summary>
    [JsonPropertyName("resource")]
    public string ResourceType { get; init; } = "";

    /// <summary>Pipeline to run for the resource; <c>null</c> sends it to every driver of its type instead.</summary>
    [JsonPropertyName("pipeline")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Pipeline { get; init; }

    /// <summary>
    /// String metadata. Ignored on creation, as in the original (the server starts every resource at
    /// <c>{"version": "1"}</c>), but it must be string to string.
    /// </summary>
    [JsonPropertyName("metadata")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyDictionary<string, string>? Metadata { get; init; }

    /// <summary>The specification, validated against the type's schema.</summary>
    [JsonPropertyName("spec")]
    public JsonElement? Spec { get; init; }
}

/// <summary>Response of <c>POST /resources</c> (the original's keys, in its alphabetical order).</summary>
public sealed record CreateResourceResponse
{
    /// <summary><c>Resource created successfully</c>.</summary>
    [JsonPropertyName("message")]
    public string Message { get; init; } = "";

    /// <summary>Name of the created resource.</summary>
    [JsonPropertyName("name")]
    public string Name { get; init; } = "";

    /// <summary>Id of the run the creation started (or of the drivers' announcement, for a resource without pipeline).</summary>
    [JsonPropertyName("runid")]
    public Guid RunId { get; init; }

    /// <summary>Resource version, <c>1</c> on creation.</summary>
    [JsonPropertyName("version")]
    public string Version { get; init; } = "";
}

/// <summary>
/// A page of <c>GET /resources</c> (by type, then name) or <c>GET /resources/{type}</c> (by name). Items are the
/// resources as stored: the <c>driverresults.*</c> metadata of their latest run shows only on <c>GET</c> of one.
/// </summary>
public sealed record ResourcePage
{
    /// <summary>The resources on this page.</summary>
    [JsonPropertyName("items")]
    public IReadOnlyList<Conveyor.Contracts.Resource> Items { get; init; } = [];

    /// <summary>Pass as <c>cursor</c> to get the next page; null on the last page.</summary>
    [JsonPropertyName("nextCursor")]
    public string? NextCursor { get; init; }
}
