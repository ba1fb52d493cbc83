using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Catalog;

namespace Conveyor.Grains.Resources;

/// <summary>Stored state of a resource definition.</summary>
[GenerateSerializer]
[Alias("conveyor.ResourceDefinitionState")]
internal sealed class ResourceDefinitionState
{
    /// <summary>The definition; null when deleted or never created.</summary>
    [Id(0)] public ResourceDefinitionData? Definition { get; set; }
}

/// <summary>A resource definition, validated (name, schema) and persisted.</summary>
internal sealed class ResourceDefinitionGrain(
    [PersistentState("definition", ConveyorStorage.Name)] IPersistentState<ResourceDefinitionState> state,
    IObjectCatalog catalog,
    TimeProvider time) : Grain, IResourceDefinitionGrain
{
    private CatalogEntry Entry => CatalogEntry.Definition(Names.SplitKey(this.GetPrimaryKeyString())[0], Names.SplitKey(this.GetPrimaryKeyString())[^1]);

    /// <inheritdoc />
    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        // Lists what this activation serves, also when it was stored before listings existed.
        if (state.State.Definition is not null)
        {
            await catalog.AddAsync(Entry);
        }
    }

    /// <inheritdoc />
    public async Task<ResourceDefinitionData?> RepairCatalogAsync()
    {
        if (state.State.Definition is null)
        {
            await catalog.RemoveAsync(Entry);
        }
        else
        {
            await catalog.AddAsync(Entry);
        }

        return state.State.Definition;
    }
    /// <inheritdoc />
    public async Task<ResourceDefinitionData> CreateAsync(ResourceDefinitionData definition)
    {
        await ValidateAsync(definition);
        if (state.State.Definition is not null)
        {
            throw new ConveyorConflictException($"resource definition with name {definition.Name} already exists");
        }

        return await StoreAsync(definition, id: Guid.NewGuid().ToString());
    }

    /// <inheritdoc />
    public async Task<WriteResult<ResourceDefinitionData>> ApplyAsync(ResourceDefinitionData definition)
    {
        await ValidateAsync(definition);
        return Unchanged(definition) ?? Changed(await StoreAsync(definition, state.State.Definition?.Id ?? Guid.NewGuid().ToString()));
    }

    /// <inheritdoc />
    public async Task<WriteResult<ResourceDefinitionData>> UpdateAsync(ResourceDefinitionData definition)
    {
        await ValidateAsync(definition);
        var current = state.State.Definition
            ?? throw new ConveyorNotFoundException($"resource definition with name {definition.Name} not found");
        return Unchanged(definition) ?? Changed(await StoreAsync(definition, current.Id));
    }

    private WriteResult<ResourceDefinitionData>? Unchanged(ResourceDefinitionData definition) =>
        state.State.Definition is { } stored && SameContent.Definition(stored, definition)
            ? new WriteResult<ResourceDefinitionData> { Value = stored, Unchanged = true }
            : null;

    private static WriteResult<ResourceDefinitionData> Changed(ResourceDefinitionData stored) => new() { Value = stored };

    /// <inheritdoc />
    public Task<ResourceDefinitionData?> GetAsync() => Task.FromResult(state.State.Definition);

    /// <inheritdoc />
    public async Task<bool> DeleteAsync()
    {
        if (state.State.Definition is null)
        {
            return false;
        }

        await state.ClearStateAsync();
        await catalog.RemoveAsync(Entry);
        return true;
    }

    private async Task ValidateAsync(ResourceDefinitionData definition)
    {
        Names.Validate(definition.Name, "name");
        var keyName = Names.SplitKey(this.GetPrimaryKeyString())[^1];
        if (!string.Equals(definition.Name, keyName, StringComparison.Ordinal))
        {
            throw new ConveyorValidationException("name", $"'name' ({definition.Name}) does not match the name in the URL ({keyName}).");
        }

        if (definition.Schema is not null)
        {
            await SchemaValidator.CompileAsync(definition.Schema);
        }
    }

    private async Task<ResourceDefinitionData> StoreAsync(ResourceDefinitionData definition, string id)
    {
        var now = time.GetUtcNow();
        await catalog.AddAsync(Entry);
        state.State.Definition = new ResourceDefinitionData
        {
            Id = id,
            Name = definition.Name,
            Description = definition.Description,
            Version = definition.Version,
            Schema = definition.Schema,
            CreatedAt = state.State.Definition?.CreatedAt ?? now,
            UpdatedAt = now,
        };
        await state.WriteStateAsync();
        return state.State.Definition;
    }
}
