using Orleans.Concurrency;

namespace Conveyor.Grains.Security;

/// <summary>One API key. Key: the key id. Every authenticated request reads it, so a revocation applies at once everywhere.</summary>
[Alias("conveyor.IApiKeyGrain")]
internal interface IApiKeyGrain : IGrainWithStringKey
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
internal interface IApiKeyRegistryGrain : IGrainWithStringKey
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
    /// Starts generating the bootstrap admin key <paramref name="candidateId"/>. <see cref="BootstrapStep.Done"/> once
    /// a generated key was completed (also on every later start, so none is printed twice);
    /// <see cref="BootstrapStep.Busy"/> while another attempt holds an unexpired lease (another silo is at it);
    /// otherwise <see cref="BootstrapStep.Proceed"/>: the caller creates the key, logs it, then calls
    /// <see cref="CompleteBootstrapAsync"/> before <paramref name="leaseUntil"/>. An attempt whose lease ran out without
    /// completing (its silo died between the steps) is taken over and named in
    /// <see cref="BootstrapBegin.Abandoned"/>, for the caller to revoke: the cluster is never left without the key.
    /// </summary>
    Task<BootstrapBegin> BeginBootstrapAsync(string candidateId, DateTimeOffset leaseUntil);

    /// <summary>
    /// Marks the attempt <paramref name="keyId"/> complete: no key is generated again. False when its lease had run
    /// out and another attempt took over.
    /// </summary>
    Task<bool> CompleteBootstrapAsync(string keyId);
}

/// <summary>What <see cref="IApiKeyRegistryGrain.BeginBootstrapAsync"/> decided.</summary>
internal enum BootstrapStep
{
    /// <summary>Create, log and complete the candidate key.</summary>
    Proceed = 0,

    /// <summary>Another attempt is in progress; ask again later.</summary>
    Busy = 1,

    /// <summary>A bootstrap key was generated before; do nothing.</summary>
    Done = 2,
}

/// <summary>The answer to <see cref="IApiKeyRegistryGrain.BeginBootstrapAsync"/>.</summary>
[GenerateSerializer]
[Alias("conveyor.BootstrapBegin")]
internal sealed record BootstrapBegin
{
    /// <summary>What to do.</summary>
    [Id(0)] public BootstrapStep Step { get; init; }

    /// <summary>With <see cref="BootstrapStep.Proceed"/>: the id of an attempt that never completed, to revoke.</summary>
    [Id(1)] public string? Abandoned { get; init; }
}

/// <summary>The namespaces that exist. Singleton: key <see cref="Id"/>. <c>default</c> always exists.</summary>
[Alias("conveyor.INamespaceRegistryGrain")]
internal interface INamespaceRegistryGrain : IGrainWithStringKey
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
