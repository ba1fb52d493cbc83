using Conveyor.Grains.Abstractions;

namespace Conveyor.Grains.Security;

/// <summary>Stored state of an API key.</summary>
[GenerateSerializer]
[Alias("conveyor.ApiKeyState")]
public sealed class ApiKeyState
{
    /// <summary>The key; null when never created.</summary>
    [Id(0)] public ApiKeyData? Key { get; set; }
}

/// <summary>One API key: created once, read on every request, revoked for good.</summary>
public sealed class ApiKeyGrain(
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
public sealed class ApiKeyRegistryState
{
    /// <summary>Key ids, oldest first.</summary>
    [Id(0)] public List<string> KeyIds { get; set; } = [];

    /// <summary>Whether a bootstrap admin key was ever generated.</summary>
    [Id(1)] public bool BootstrapClaimed { get; set; }
}

/// <summary>The list of key ids (for listing) and the one-time bootstrap marker.</summary>
public sealed class ApiKeyRegistryGrain(
    [PersistentState("apikeys", ConveyorStorage.Name)] IPersistentState<ApiKeyRegistryState> state) : Grain, IApiKeyRegistryGrain
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
    public async Task<bool> ClaimBootstrapAsync()
    {
        if (state.State.BootstrapClaimed)
        {
            return false;
        }

        state.State.BootstrapClaimed = true;
        await state.WriteStateAsync();
        return true;
    }
}
