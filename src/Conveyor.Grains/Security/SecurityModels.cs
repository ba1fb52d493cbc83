namespace Conveyor.Grains.Security;

/// <summary>What an API key may do. Each role includes the ones below it.</summary>
public enum ApiRole
{
    /// <summary>Read objects, runs and logs.</summary>
    Viewer = 0,

    /// <summary>Also write definitions, pipelines, resources and secrets; trigger, cancel and retry runs.</summary>
    Operator = 1,

    /// <summary>Also manage API keys and namespaces; every namespace.</summary>
    Admin = 2,
}

/// <summary>A stored API key. The secret itself is never stored, only its SHA-256 hash.</summary>
[GenerateSerializer]
[Alias("conveyor.ApiKeyData")]
public sealed class ApiKeyData
{
    /// <summary>Public key id (the middle part of <c>cvk_&lt;id&gt;_&lt;secret&gt;</c>).</summary>
    [Id(0)] public string Id { get; set; } = "";

    /// <summary>Free text naming the key's holder.</summary>
    [Id(1)] public string Name { get; set; } = "";

    /// <summary>Role.</summary>
    [Id(2)] public ApiRole Role { get; set; }

    /// <summary>Namespaces the key may act in; <c>*</c> means every namespace. Admin keys act in every namespace.</summary>
    [Id(3)] public List<string> Namespaces { get; set; } = [];

    /// <summary>SHA-256 of the secret part.</summary>
    [Id(4)] public byte[] SecretHash { get; set; } = [];

    /// <summary>When the key was created.</summary>
    [Id(5)] public DateTimeOffset CreatedAt { get; set; }

    /// <summary>When the key was revoked; null while it is valid.</summary>
    [Id(6)] public DateTimeOffset? RevokedAt { get; set; }

    /// <summary>Whether the key was the bootstrap admin key.</summary>
    [Id(7)] public bool Bootstrap { get; set; }

    /// <summary>Whether the key may act in <paramref name="ns"/>.</summary>
    public bool Covers(string ns) => Role == ApiRole.Admin || Namespaces.Contains("*") || Namespaces.Contains(ns);
}

/// <summary>A namespace as the registry keeps it.</summary>
[GenerateSerializer]
[Alias("conveyor.NamespaceInfo")]
public sealed class NamespaceInfo
{
    /// <summary>Name (a DNS label).</summary>
    [Id(0)] public string Name { get; set; } = "";

    /// <summary>When it was created.</summary>
    [Id(1)] public DateTimeOffset CreatedAt { get; set; }

    /// <summary>When its deletion began (its tombstone); null while the namespace is live.</summary>
    [Id(2)] public DateTimeOffset? DeletingSince { get; set; }
}

/// <summary>A secret's name and when its value last changed; the value is never part of it.</summary>
[GenerateSerializer]
[Alias("conveyor.SecretInfo")]
public sealed class SecretInfo
{
    /// <summary>Name.</summary>
    [Id(0)] public string Name { get; set; } = "";

    /// <summary>When the value was last written.</summary>
    [Id(1)] public DateTimeOffset UpdatedAt { get; set; }

    /// <summary>Incremented by every write of the value.</summary>
    [Id(2)] public int Version { get; set; }

    /// <summary>Id of the key the value is encrypted with (see key rotation).</summary>
    [Id(3)] public string KeyId { get; set; } = "";
}
