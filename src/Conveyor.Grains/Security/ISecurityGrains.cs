using Orleans.Concurrency;

namespace Conveyor.Grains.Security;

/// <summary>One API key. Key: the key id. Every authenticated request reads it, so a revocation applies at once everywhere.</summary>
[Alias("conveyor.IApiKeyGrain")]
public interface IApiKeyGrain : IGrainWithStringKey
{
    /// <summary>Stores a new key; <see cref="Abstractions.ConveyorConflictException"/> when the id is taken.</summary>
    Task<ApiKeyData> CreateAsync(ApiKeyData key);

    /// <summary>The key, or null.</summary>
    [ReadOnly]
    [AlwaysInterleave]
    Task<ApiKeyData?> GetAsync();

    /// <summary>Revokes the key; false when there is no such key. Revoking twice keeps the first time.</summary>
    Task<bool> RevokeAsync();
}

/// <summary>The list of API key ids and the bootstrap marker. Singleton: key <see cref="Id"/>.</summary>
[Alias("conveyor.IApiKeyRegistryGrain")]
public interface IApiKeyRegistryGrain : IGrainWithStringKey
{
    /// <summary>The registry's grain key.</summary>
    const string Id = "keys";

    /// <summary>Adds a key id to the list.</summary>
    Task AddAsync(string keyId);

    /// <summary>Every key id, oldest first.</summary>
    [ReadOnly]
    [AlwaysInterleave]
    Task<List<string>> ListAsync();

    /// <summary>
    /// Claims the one-time generation of a bootstrap admin key: true for the first caller ever (which then creates
    /// and prints the key), false afterwards — also after a restart, so a new key is never printed twice.
    /// </summary>
    Task<bool> ClaimBootstrapAsync();
}

/// <summary>The namespaces that exist. Singleton: key <see cref="Id"/>. <c>default</c> always exists.</summary>
[Alias("conveyor.INamespaceRegistryGrain")]
public interface INamespaceRegistryGrain : IGrainWithStringKey
{
    /// <summary>The registry's grain key.</summary>
    const string Id = "namespaces";

    /// <summary>Creates a namespace; <see cref="Abstractions.ConveyorConflictException"/> when it exists.</summary>
    Task<NamespaceInfo> CreateAsync(string name);

    /// <summary>Whether the namespace exists.</summary>
    [ReadOnly]
    [AlwaysInterleave]
    Task<bool> ExistsAsync(string name);

    /// <summary>The namespace or null.</summary>
    [ReadOnly]
    [AlwaysInterleave]
    Task<NamespaceInfo?> GetAsync(string name);

    /// <summary>Every namespace, by name.</summary>
    [ReadOnly]
    [AlwaysInterleave]
    Task<List<NamespaceInfo>> ListAsync();

    /// <summary>Removes a namespace; false when it did not exist. <c>default</c> cannot be removed.</summary>
    Task<bool> DeleteAsync(string name);
}
