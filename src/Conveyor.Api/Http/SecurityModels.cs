using System.Text.Json.Serialization;
using Conveyor.Grains.Security;

namespace Conveyor.Api.Http;

/// <summary>Body of <c>POST /keys</c>.</summary>
public sealed record CreateApiKeyDto
{
    /// <summary>Free text naming the key's holder (1–100 characters).</summary>
    [JsonPropertyName("name")] public string? Name { get; init; }

    /// <summary><c>admin</c>, <c>operator</c> or <c>viewer</c>.</summary>
    [JsonPropertyName("role")] public string? Role { get; init; }

    /// <summary>Namespaces the key may act in (<c>*</c>: all); required for operator and viewer keys.</summary>
    [JsonPropertyName("namespaces")] public List<string>? Namespaces { get; init; }
}

/// <summary>An API key as listed: never its secret.</summary>
public sealed record ApiKeyDto
{
    /// <summary>Key id.</summary>
    [JsonPropertyName("id")] public string Id { get; init; } = "";

    /// <summary>Holder's name.</summary>
    [JsonPropertyName("name")] public string Name { get; init; } = "";

    /// <summary>Role.</summary>
    [JsonPropertyName("role")] public string Role { get; init; } = "";

    /// <summary>Namespaces.</summary>
    [JsonPropertyName("namespaces")] public IReadOnlyList<string> Namespaces { get; init; } = [];

    /// <summary>When created.</summary>
    [JsonPropertyName("createdAt")] public DateTimeOffset CreatedAt { get; init; }

    /// <summary>When revoked; absent while valid.</summary>
    [JsonPropertyName("revokedAt")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public DateTimeOffset? RevokedAt { get; init; }

    /// <summary>The full key: only in the response that created it.</summary>
    [JsonPropertyName("key")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Key { get; init; }

    internal static ApiKeyDto From(ApiKeyData key, string? secretKey = null) => new()
    {
        Id = key.Id,
        Name = key.Name,
        Role = key.Role.ToString().ToLowerInvariant(),
        Namespaces = key.Role == ApiRole.Admin ? ["*"] : key.Namespaces,
        CreatedAt = key.CreatedAt,
        RevokedAt = key.RevokedAt,
        Key = secretKey,
    };
}

/// <summary>A list of API keys.</summary>
public sealed record ApiKeyListDto
{
    /// <summary>The keys, oldest first.</summary>
    [JsonPropertyName("items")] public IReadOnlyList<ApiKeyDto> Items { get; init; } = [];
}

/// <summary>Body of <c>POST /namespaces</c>, and a namespace as listed.</summary>
public sealed record NamespaceDto
{
    /// <summary>Name (a DNS label).</summary>
    [JsonPropertyName("name")] public string? Name { get; init; }

    /// <summary>When created (ignored on input).</summary>
    [JsonPropertyName("createdAt")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public DateTimeOffset? CreatedAt { get; init; }

    /// <summary>When its deletion began, while it is being deleted (its routes then answer 404 and nothing starts in it).</summary>
    [JsonPropertyName("deletingSince")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public DateTimeOffset? DeletingSince { get; init; }

    internal static NamespaceDto From(NamespaceInfo info) =>
        new() { Name = info.Name, CreatedAt = info.CreatedAt == default ? null : info.CreatedAt, DeletingSince = info.DeletingSince };
}

/// <summary>A list of namespaces.</summary>
public sealed record NamespaceListDto
{
    /// <summary>The namespaces, by name.</summary>
    [JsonPropertyName("items")] public IReadOnlyList<NamespaceDto> Items { get; init; } = [];
}

/// <summary>Body of <c>PUT /secrets/{name}</c>.</summary>
public sealed record SecretValueDto
{
    /// <summary>The value (at most 64 KiB of UTF-8). Write-only: no response ever contains it.</summary>
    [JsonPropertyName("value")] public string? Value { get; init; }
}

/// <summary>A secret as listed: name and version, never the value.</summary>
public sealed record SecretDto
{
    /// <summary>Name.</summary>
    [JsonPropertyName("name")] public string Name { get; init; } = "";

    /// <summary>Incremented by every write.</summary>
    [JsonPropertyName("version")] public int Version { get; init; }

    /// <summary>When the value was last written.</summary>
    [JsonPropertyName("updatedAt")] public DateTimeOffset UpdatedAt { get; init; }

    /// <summary>Id of the key the value is encrypted with: after a rotation, every secret shows the new primary key.</summary>
    [JsonPropertyName("keyId")] public string KeyId { get; init; } = "";

    internal static SecretDto From(SecretInfo info) => new() { Name = info.Name, Version = info.Version, UpdatedAt = info.UpdatedAt, KeyId = info.KeyId };
}

/// <summary>What <c>POST /secrets/reencrypt</c> did.</summary>
public sealed record ReencryptDto
{
    /// <summary>The key every value is now encrypted with.</summary>
    [JsonPropertyName("keyId")] public string KeyId { get; init; } = "";

    /// <summary>Namespaces visited.</summary>
    [JsonPropertyName("namespaces")] public int Namespaces { get; init; }

    /// <summary>Secrets moved to <see cref="KeyId"/>.</summary>
    [JsonPropertyName("secrets")] public int Secrets { get; init; }

    /// <summary>Webhook keys moved to <see cref="KeyId"/>.</summary>
    [JsonPropertyName("webhookSecrets")] public int WebhookSecrets { get; init; }

    /// <summary>Values that already were under <see cref="KeyId"/>.</summary>
    [JsonPropertyName("unchanged")] public int Unchanged { get; init; }
}

/// <summary>A list of secrets.</summary>
public sealed record SecretListDto
{
    /// <summary>The secrets, by name.</summary>
    [JsonPropertyName("items")] public IReadOnlyList<SecretDto> Items { get; init; } = [];
}

/// <summary>What <c>GET /step-secrets</c> returns to a driver.</summary>
public sealed record StepSecretsDto
{
    /// <summary>Values by name: the secrets the step references (or the one asked for).</summary>
    [JsonPropertyName("secrets")] public IReadOnlyDictionary<string, string> Secrets { get; init; } = new Dictionary<string, string>();
}
