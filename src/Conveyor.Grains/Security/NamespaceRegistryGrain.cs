using Conveyor.Grains.Abstractions;

namespace Conveyor.Grains.Security;

/// <summary>Stored state of the namespace registry.</summary>
[GenerateSerializer]
[Alias("conveyor.NamespaceRegistryState")]
internal sealed class NamespaceRegistryState
{
    /// <summary>Namespaces by name (<c>default</c> is implicit).</summary>
    [Id(0)] public Dictionary<string, NamespaceInfo> Namespaces { get; set; } = [];

    /// <summary>Names of deleted namespaces: never handed out again, so objects left in storage never resurface.</summary>
    [Id(1)] public HashSet<string> Retired { get; set; } = [];
}

/// <summary>The namespaces that exist; one small grain, read (interleaved) by every namespaced request.</summary>
internal sealed class NamespaceRegistryGrain(
    [PersistentState("namespaces", ConveyorStorage.Name)] IPersistentState<NamespaceRegistryState> state,
    TimeProvider time) : Grain, INamespaceRegistryGrain
{
    private static readonly NamespaceInfo Default = new() { Name = Names.DefaultNamespace };

    /// <inheritdoc />
    public async Task<NamespaceInfo> CreateAsync(string name)
    {
        Names.Validate(name, "name");
        if (name == Names.DefaultNamespace || state.State.Namespaces.ContainsKey(name))
        {
            throw new ConveyorConflictException($"namespace {name} already exists");
        }

        if (state.State.Retired.Contains(name))
        {
            throw new ConveyorConflictException($"namespace {name} was deleted; a deleted namespace's name is not reused");
        }

        var info = new NamespaceInfo { Name = name, CreatedAt = time.GetUtcNow() };
        state.State.Namespaces[name] = info;
        await state.WriteStateAsync();
        return info;
    }

    /// <inheritdoc />
    public Task<bool> ExistsAsync(string name) =>
        Task.FromResult(name == Names.DefaultNamespace || state.State.Namespaces.ContainsKey(name));

    /// <inheritdoc />
    public Task<NamespaceInfo?> GetAsync(string name) =>
        Task.FromResult(name == Names.DefaultNamespace ? Default : state.State.Namespaces.GetValueOrDefault(name));

    /// <inheritdoc />
    public Task<List<NamespaceInfo>> ListAsync() =>
        Task.FromResult(state.State.Namespaces.Values.Append(Default).OrderBy(n => n.Name, StringComparer.Ordinal).ToList());

    /// <inheritdoc />
    public async Task<bool> DeleteAsync(string name)
    {
        if (name == Names.DefaultNamespace)
        {
            throw new ConveyorConflictException("the default namespace cannot be deleted");
        }

        if (!state.State.Namespaces.Remove(name))
        {
            return false;
        }

        state.State.Retired.Add(name);

        await state.WriteStateAsync();
        return true;
    }
}
