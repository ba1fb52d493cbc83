using System.ComponentModel.DataAnnotations;
using System.Text.Json.Serialization;

namespace Conveyor.Client;

/// <summary>Body of <c>POST /keys</c>.</summary>
public sealed record CreateApiKeyRequest
{
    /// <summary>Free text naming the key's holder (1–100 characters).</summary>
    [JsonPropertyName("name")]
    public string? Name { get; init; }

    /// <summary><c>admin</c>, <c>operator</c> or <c>viewer</c>.</summary>
    [JsonPropertyName("role")]
    [AllowedValues("admin", "operator", "viewer")]
    public string? Role { get; init; }

    /// <summary>Namespaces the key may act in (<c>*</c>: all); required for operator and viewer keys.</summary>
    [JsonPropertyName("namespaces")]
    public IReadOnlyList<string>? Namespaces { get; init; }
}

/// <summary>An API key as listed: never its secret, except in the response that created it.</summary>
public sealed record ApiKeyEntry
{
    /// <summary>Key id.</summary>
    [JsonPropertyName("id")]
    public string Id { get; init; } = "";

    /// <summary>Holder's name.</summary>
    [JsonPropertyName("name")]
    public string Name { get; init; } = "";

    /// <summary><c>admin</c>, <c>operator</c> or <c>viewer</c>.</summary>
    [JsonPropertyName("role")]
    [AllowedValues("admin", "operator", "viewer")]
    public string Role { get; init; } = "";

    /// <summary>Namespaces the key may act in (<c>*</c>: all).</summary>
    [JsonPropertyName("namespaces")]
    public IReadOnlyList<string> Namespaces { get; init; } = [];

    /// <summary>When created.</summary>
    [JsonPropertyName("createdAt")]
    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>When revoked; omitted while valid.</summary>
    [JsonPropertyName("revokedAt")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public DateTimeOffset? RevokedAt { get; init; }

    /// <summary>The full key (<c>cvk_…</c>): only in the response that created it.</summary>
    [JsonPropertyName("key")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Key { get; init; }
}

/// <summary>Body of <c>GET /keys</c>.</summary>
public sealed record ApiKeyList
{
    /// <summary>The keys, oldest first.</summary>
    [JsonPropertyName("items")]
    public IReadOnlyList<ApiKeyEntry> Items { get; init; } = [];
}

/// <summary>Body of <c>POST /namespaces</c>.</summary>
public sealed record CreateNamespaceRequest
{
    /// <summary>Name (a DNS label).</summary>
    [JsonPropertyName("name")]
    public string? Name { get; init; }
}

/// <summary>A namespace as listed.</summary>
public sealed record NamespaceEntry
{
    /// <summary>Name (a DNS label).</summary>
    [JsonPropertyName("name")]
    public string? Name { get; init; }

    /// <summary>When created; omitted for <c>default</c>, which always exists.</summary>
    [JsonPropertyName("createdAt")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public DateTimeOffset? CreatedAt { get; init; }
}

/// <summary>Body of <c>GET /namespaces</c>.</summary>
public sealed record NamespaceList
{
    /// <summary>The namespaces, by name.</summary>
    [JsonPropertyName("items")]
    public IReadOnlyList<NamespaceEntry> Items { get; init; } = [];
}

/// <summary>Body of <c>PUT /secrets/{name}</c>.</summary>
public sealed record PutSecretRequest
{
    /// <summary>The value (at most 64 KiB of UTF-8). Write-only: no response ever contains it.</summary>
    [JsonPropertyName("value")]
    public string? Value { get; init; }
}

/// <summary>A secret as listed: name and version, never the value.</summary>
public sealed record SecretEntry
{
    /// <summary>Name.</summary>
    [JsonPropertyName("name")]
    public string Name { get; init; } = "";

    /// <summary>Incremented by every write.</summary>
    [JsonPropertyName("version")]
    public int Version { get; init; }

    /// <summary>When the value was last written.</summary>
    [JsonPropertyName("updatedAt")]
    public DateTimeOffset UpdatedAt { get; init; }
}

/// <summary>Body of <c>GET /secrets</c>.</summary>
public sealed record SecretList
{
    /// <summary>The secrets, by name.</summary>
    [JsonPropertyName("items")]
    public IReadOnlyList<SecretEntry> Items { get; init; } = [];
}

/// <summary>What <c>GET /step-secrets</c> returns to a driver.</summary>
public sealed record StepSecrets
{
    /// <summary>Values by name: the secrets the step references (or the one asked for).</summary>
    [JsonPropertyName("secrets")]
    public IReadOnlyDictionary<string, string> Secrets { get; init; } = new Dictionary<string, string>();
}

/// <summary>Body of <c>GET /health</c> (the original's shape).</summary>
public sealed record HealthStatus
{
    /// <summary>Always <c>healthy</c>.</summary>
    [JsonPropertyName("status")]
    public string Status { get; init; } = "healthy";

    /// <summary>Server time, Unix seconds.</summary>
    [JsonPropertyName("time")]
    public long Time { get; init; }
}
