using Conveyor.Grains.Abstractions;

namespace Conveyor.Grains.Security;

/// <summary>Stored state of an API key.</summary>
[GenerateSerializer]
[Alias("conveyor.ApiKeyState")]
internal sealed class ApiKeyState
{
    /// <summary>The key; null when never created.</summary>
    [Id(0)] public ApiKeyData? Key { get; set; }
}

/// <summary>One API key: created once, read on every request, revoked for good.</summary>
internal sealed class ApiKeyGrain(
    [PersistentState("apikey", ConveyorStorage.Name)] IPersistentState<ApiKeyState> state,
    TimeProvider time) : Grain, IApiKeyGrain
{
    /// <inheritdoc />
    public async Task<ApiKeyData> CreateAsync(ApiKeyData key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (state.State.Key is not null)
        {
            throw new ConveyorConflictException($"API key {key.Id} already exists");
        }

        state.State.Key = key;
        await state.WriteStateAsync();
        return key;
    }

    /// <inheritdoc />
    public Task<ApiKeyData?> GetAsync() => Task.FromResult(state.State.Key);

    /// <inheritdoc />
    public async Task<bool> RevokeAsync()
    {
        if (state.State.Key is not { } key)
        {
            return false;
        }

        if (key.RevokedAt is null)
        {
            key.RevokedAt = time.GetUtcNow();
            await state.WriteStateAsync();
        }

        return true;
    }
}

/// <summary>Stored state of the key registry.</summary>
[GenerateSerializer]
[Alias("conveyor.ApiKeyRegistryState")]
internal sealed class ApiKeyRegistryState
{
    /// <summary>Key ids, oldest first.</summary>
    [Id(0)] public List<string> KeyIds { get; set; } = [];

    /// <summary>
    /// Set by releases that claimed the bootstrap before creating its key (a crash in between left no key at all);
    /// read only to recognise such a registry.
    /// </summary>
    [Id(1)] public bool BootstrapClaimed { get; set; }

    /// <summary>The generated bootstrap key whose attempt completed (it was created and logged); null before.</summary>
    [Id(2)] public string? BootstrapKeyId { get; set; }

    /// <summary>The attempt in progress, if any.</summary>
    [Id(3)] public string? PendingBootstrapKeyId { get; set; }

    /// <summary>Until when the attempt in progress may complete before another takes over.</summary>
    [Id(4)] public DateTimeOffset? PendingUntil { get; set; }
}

/// <summary>
/// The list of key ids (for listing) and the bootstrap protocol: begin (a lease), create and log the key, complete.
/// One activation in the cluster, so silos starting together take turns.
/// </summary>
internal sealed class ApiKeyRegistryGrain(
    [PersistentState("apikeys", ConveyorStorage.Name)] IPersistentState<ApiKeyRegistryState> state,
    TimeProvider time) : Grain, IApiKeyRegistryGrain
{
    /// <inheritdoc />
    public async Task AddAsync(string keyId)
    {
        if (!state.State.KeyIds.Contains(keyId))
        {
            state.State.KeyIds.Add(keyId);
            await state.WriteStateAsync();
        }
    }

    /// <inheritdoc />
    public Task<List<string>> ListAsync() => Task.FromResult(state.State.KeyIds.ToList());

    /// <inheritdoc />
    public async Task<BootstrapBegin> BeginBootstrapAsync(string candidateId, DateTimeOffset leaseUntil)
    {
        ArgumentException.ThrowIfNullOrEmpty(candidateId);
        var s = state.State;
        // An old registry that claimed the bootstrap and has keys got its key; one that claimed it and has none is
        // the crash this protocol exists for, and is bootstrapped again.
        if (s.BootstrapKeyId is not null || (s.BootstrapClaimed && s.PendingBootstrapKeyId is null && s.KeyIds.Count > 0))
        {
            return new BootstrapBegin { Step = BootstrapStep.Done };
        }

        if (s.PendingBootstrapKeyId is not null && s.PendingUntil > time.GetUtcNow())
        {
            return new BootstrapBegin { Step = BootstrapStep.Busy };
        }

        var abandoned = s.PendingBootstrapKeyId;
        s.PendingBootstrapKeyId = candidateId;
        s.PendingUntil = leaseUntil;
        await state.WriteStateAsync();
        return new BootstrapBegin { Step = BootstrapStep.Proceed, Abandoned = abandoned };
    }

    /// <inheritdoc />
    public async Task<bool> CompleteBootstrapAsync(string keyId)
    {
        var s = state.State;
        if (s.BootstrapKeyId == keyId)
        {
            return true;
        }

        if (s.PendingBootstrapKeyId != keyId)
        {
            return false;
        }

        s.BootstrapKeyId = keyId;
        s.BootstrapClaimed = true;
        s.PendingBootstrapKeyId = null;
        s.PendingUntil = null;
        await state.WriteStateAsync();
        return true;
    }
}
