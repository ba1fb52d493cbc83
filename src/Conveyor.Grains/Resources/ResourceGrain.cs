using System.Globalization;
using System.Text.Json;
using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Catalog;
using Conveyor.Grains.Nats;
using Conveyor.Grains.Runs;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Conveyor.Grains.Resources;

/// <summary>Stored state of a resource.</summary>
[GenerateSerializer]
[Alias("conveyor.ResourceState")]
internal sealed class ResourceState
{
    /// <summary>The current resource; null when deleted or never created.</summary>
    [Id(0)] public ResourceData? Current { get; set; }

    /// <summary>
    /// Versions as earlier releases stored them, inside this state; moved to one record per version on activation.
    /// Read, never written.
    /// </summary>
    [Id(1)] public Dictionary<int, ResourceData> Versions { get; set; } = [];

    /// <summary>The pipeline run whose driver results are shown in the resource's metadata.</summary>
    [Id(2)] public Guid? LastRunId { get; set; }

    /// <summary>
    /// Outbox: a creation whose side effect (run start, or announcement to drivers) is not confirmed yet.
    /// Re-driven on activation; the side effects are idempotent.
    /// </summary>
    [Id(3)] public Guid? PendingRunId { get; set; }

    /// <summary>The oldest version kept in its own record (0: none); older ones were deleted by the version cap.</summary>
    [Id(4)] public int OldestVersion { get; set; }

    /// <summary>The newest version written to its own record (0: none).</summary>
    [Id(5)] public int LatestVersion { get; set; }
}

/// <summary>A resource: validated against its definition's schema, versioned, and the trigger of pipeline runs.</summary>
internal sealed partial class ResourceGrain(
    [PersistentState("resource", ConveyorStorage.Name)] IPersistentState<ResourceState> state,
    IGrainFactory grains,
    DriverDispatcher dispatcher,
    RunLauncher launcher,
    IObjectCatalog catalog,
    ResourceVersionStore versions,
    IOptions<ConveyorLimitsOptions> limits,
    ILogger<ResourceGrain> logger) : Grain, IResourceGrain
{
    private string Namespace => Names.SplitKey(this.GetPrimaryKeyString())[0];

    /// <inheritdoc />
    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        if (state.State.Versions.Count > 0)
        {
            await MoveLegacyVersionsAsync();
        }

        // Lists what this activation serves, also when it was stored before listings existed.
        if (state.State.Current is { } stored)
        {
            await catalog.AddAsync(CatalogEntry.Resource(Namespace, stored));
        }

        if (state.State.PendingRunId is { } runId && state.State.Current is { } current)
        {
            // A previous activation stored the resource but may have died before its side effect was confirmed.
            try
            {
                await RunSideEffectAsync(current, runId);
            }
            catch (Exception ex)
            {
                LogSideEffectFailed(logger, ex, this.GetPrimaryKeyString(), runId);
            }
        }
    }

    /// <inheritdoc />
    public async Task<CreateResourceResult> CreateAsync(ResourceData resource, Guid runId)
    {
        ArgumentNullException.ThrowIfNull(resource);
        var ns = Namespace;
        Names.Validate(resource.Name, "name");
        Names.Validate(resource.Type, "resource");
        Limits.CheckSpec(resource.Spec, limits.Value);
        await ValidateSpecAsync(ns, resource);

        PipelineSpec? pipeline = null;
        if (!string.IsNullOrEmpty(resource.Pipeline))
        {
            pipeline = await grains.GetGrain<IPipelineGrain>(Names.PipelineKey(ns, resource.Pipeline)).GetAsync()
                ?? throw new ConveyorNotFoundException($"pipeline {resource.Pipeline} not found");
            if (!string.Equals(pipeline.ResourceType, resource.Type, StringComparison.Ordinal))
            {
                throw new ConveyorValidationException(
                    "pipeline",
                    $"Resource type {resource.Type} does not match pipeline resource type {pipeline.ResourceType}");
            }
        }

        if (state.State.Current is not null)
        {
            throw new ConveyorConflictException($"resource with name {resource.Name} and type {resource.Type} already exists");
        }

        var stored = new ResourceData
        {
            Id = Guid.NewGuid().ToString(),
            Name = resource.Name,
            Type = resource.Type,
            Pipeline = string.IsNullOrEmpty(resource.Pipeline) ? null : resource.Pipeline,
            // As in the original, client metadata is discarded on create: the server owns it.
            Metadata = new Dictionary<string, string>(StringComparer.Ordinal) { ["version"] = "1" },
            Spec = resource.Spec,
            Version = 1,
        };

        // What a deleted resource of the same name left behind (a deletion cut short) never shows as this one's.
        await DeleteVersionsAsync();

        // The run (pending, with a reminder), the catalog entry and the first version only have to be durable before
        // the resource's own state, which is what commits it: a crash before that leaves a run that finds out on its
        // own whether to start or to give up, and an entry the listing drops. So they overlap instead of costing a
        // round trip (an fsync'd write) each before the run's first dispatch.
        var prepared = pipeline is null
            ? Task.CompletedTask
            : launcher.PrepareAsync(new RunRequest(ns, pipeline, stored, RunTriggers.Resource), runId);
        var cataloged = catalog.AddAsync(CatalogEntry.Resource(ns, stored));
        var versioned = versions.WriteAsync(this.GetPrimaryKeyString(), stored);
        try
        {
            await Task.WhenAll(prepared, cataloged, versioned);
        }
        catch when (prepared.IsFaulted || prepared.IsCanceled)
        {
            // No run could be recorded (its namespace went away, storage refused): the creation fails as a whole, so
            // what was written beside it goes too, best effort (a leftover version is overwritten by the next create,
            // a leftover catalog entry is dropped by the listing).
            await ForgetFailedCreateAsync(ns, stored);
            throw;
        }

        if (pipeline is not null)
        {
            state.State.LastRunId = runId;
        }

        state.State.Current = stored;
        state.State.OldestVersion = 1;
        state.State.LatestVersion = 1;
        state.State.PendingRunId = runId;
        await state.WriteStateAsync();

        await RunSideEffectAsync(stored, runId);
        return new CreateResourceResult { Resource = stored, RunId = runId };
    }

    /// <inheritdoc />
    public async Task<WriteResult<ResourceData>> UpdateAsync(ResourceData resource)
    {
        ArgumentNullException.ThrowIfNull(resource);
        var ns = Namespace;
        var type = Names.SplitKey(this.GetPrimaryKeyString())[1];
        var keyName = Names.SplitKey(this.GetPrimaryKeyString())[2];
        resource.Type = type;
        Limits.CheckSpec(resource.Spec, limits.Value);
        await ValidateSpecAsync(ns, resource);
        var current = state.State.Current
            ?? throw new ConveyorNotFoundException($"resource with name {keyName} and type {type} not found");
        if (!string.IsNullOrEmpty(resource.Name) && !string.Equals(resource.Name, keyName, StringComparison.Ordinal))
        {
            throw new ConveyorValidationException("name", $"'name' ({resource.Name}) does not match the name in the URL ({keyName}).");
        }

        resource.Pipeline = string.IsNullOrEmpty(resource.Pipeline) ? current.Pipeline : resource.Pipeline;
        if (await UnchangedAsync(current, resource))
        {
            return new WriteResult<ResourceData> { Value = current, Unchanged = true };
        }

        var version = current.Version + 1;
        var metadata = new Dictionary<string, string>(resource.Metadata, StringComparer.Ordinal)
        {
            ["version"] = version.ToString(CultureInfo.InvariantCulture),
        };
        var stored = new ResourceData
        {
            Id = current.Id,
            Name = keyName,
            Type = type,
            Pipeline = resource.Pipeline,
            Metadata = metadata,
            Spec = resource.Spec,
            Version = version,
        };

        await catalog.AddAsync(CatalogEntry.Resource(ns, stored));
        // The version's own record first: the state then names a version that is stored.
        await versions.WriteAsync(this.GetPrimaryKeyString(), stored);
        state.State.Current = stored;
        state.State.LatestVersion = version;
        state.State.OldestVersion = state.State.OldestVersion == 0 ? version : state.State.OldestVersion;
        // An update starts from a clean slate: earlier driver results no longer describe this version.
        state.State.LastRunId = null;
        await state.WriteStateAsync();
        await TrimVersionsAsync();
        if (current.Pipeline != stored.Pipeline)
        {
            await catalog.RemoveFilterAsync(CatalogEntry.Resource(ns, current));
        }

        return new WriteResult<ResourceData> { Value = stored };
    }

    /// <summary>
    /// Whether an update would store what is stored, or what a read shows (with the latest run's driver results):
    /// then it is a no-op and the driver results stay. As in the original, an update starts no run either way.
    /// </summary>
    private async Task<bool> UnchangedAsync(ResourceData current, ResourceData incoming)
    {
        if (SameContent.Resource(current, incoming, null))
        {
            return true;
        }

        return SameContent.MayCarryDriverResults(incoming) && state.State.LastRunId is { } runId
            && SameContent.Resource(current, incoming, await grains.GetRunGrain(runId).GetDriverResultsAsync());
    }

    /// <inheritdoc />
    public Task<(ResourceData? Resource, Guid? LastRunId)> GetAsync() =>
        Task.FromResult((state.State.Current, state.State.LastRunId));

    /// <inheritdoc />
    public Task<ResourceData?> GetVersionAsync(int version) =>
        state.State.Current is null || version < state.State.OldestVersion || version > state.State.LatestVersion
            ? Task.FromResult<ResourceData?>(null)
            : versions.ReadAsync(this.GetPrimaryKeyString(), version);

    /// <inheritdoc />
    public async Task<bool> DeleteAsync()
    {
        if (state.State.Current is not { } previous)
        {
            return false;
        }

        // Gone at once; then its versions, then the record itself (a crash in between is finished by the next create).
        state.State.Current = null;
        state.State.LastRunId = null;
        state.State.PendingRunId = null;
        await state.WriteStateAsync();
        await catalog.RemoveAsync(CatalogEntry.Resource(Namespace, previous));
        await DeleteVersionsAsync();
        await state.ClearStateAsync();
        return true;
    }

    /// <summary>Deletes the oldest versions beyond the cap (<see cref="ConveyorLimitsOptions.KeepResourceVersions"/>).</summary>
    private async Task TrimVersionsAsync()
    {
        var keepFrom = state.State.LatestVersion - limits.Value.KeepResourceVersions + 1;
        if (state.State.OldestVersion >= keepFrom || state.State.OldestVersion == 0)
        {
            return;
        }

        for (var v = state.State.OldestVersion; v < keepFrom; v++)
        {
            await versions.DeleteAsync(this.GetPrimaryKeyString(), v);
        }

        state.State.OldestVersion = keepFrom;
        await state.WriteStateAsync();
    }

    private async Task ForgetFailedCreateAsync(string ns, ResourceData stored)
    {
        try
        {
            await versions.DeleteAsync(this.GetPrimaryKeyString(), stored.Version);
            await catalog.RemoveAsync(CatalogEntry.Resource(ns, stored));
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LogCreateNotUndone(logger, ex, this.GetPrimaryKeyString());
        }
    }

    /// <summary>Deletes every version record the state names.</summary>
    private async Task DeleteVersionsAsync()
    {
        if (state.State.LatestVersion == 0)
        {
            return;
        }

        for (var v = Math.Max(1, state.State.OldestVersion); v <= state.State.LatestVersion; v++)
        {
            await versions.DeleteAsync(this.GetPrimaryKeyString(), v);
        }

        state.State.OldestVersion = 0;
        state.State.LatestVersion = 0;
    }

    /// <summary>Moves versions kept inside the state by earlier releases to their own records (the newest within the cap).</summary>
    private async Task MoveLegacyVersionsAsync()
    {
        var kept = state.State.Versions.Keys.OrderDescending().Take(limits.Value.KeepResourceVersions).Order().ToList();
        foreach (var v in kept)
        {
            await versions.WriteAsync(this.GetPrimaryKeyString(), state.State.Versions[v]);
        }

        state.State.OldestVersion = kept[0];
        state.State.LatestVersion = Math.Max(kept[^1], state.State.LatestVersion);
        state.State.Versions = [];
        await state.WriteStateAsync();
    }

    /// <inheritdoc />
    public async Task<ResourceData?> RepairCatalogAsync(string? stalePipeline)
    {
        var parts = Names.SplitKey(this.GetPrimaryKeyString());
        if (state.State.Current is not { } current)
        {
            await catalog.RemoveAsync(new CatalogEntry(parts[0], CatalogKind.Resource, parts[1] + "/" + parts[2], stalePipeline));
            return null;
        }

        await catalog.AddAsync(CatalogEntry.Resource(parts[0], current));
        if (stalePipeline is not null && stalePipeline != current.Pipeline)
        {
            await catalog.RemoveFilterAsync(CatalogEntry.Resource(parts[0], current) with { Filter = stalePipeline });
        }

        return current;
    }

    private async Task ValidateSpecAsync(string ns, ResourceData resource)
    {
        var definition = await grains.GetGrain<IResourceDefinitionGrain>(Names.DefinitionKey(ns, resource.Type)).GetAsync()
            ?? throw new ConveyorNotFoundException($"resource definition with name {resource.Type} not found");
        if (definition.Schema is null)
        {
            throw new ConveyorValidationException("resource", "Resource definition schema is required");
        }

        var schema = await SchemaValidator.CompileAsync(definition.Schema);
        var errors = SchemaValidator.Validate(schema, resource.Spec);
        if (errors.Count > 0)
        {
            var first = errors.First();
            throw new ConveyorValidationException($"Resource validation failed: {first.Key}: {first.Value[0]}", errors);
        }
    }

    private async Task RunSideEffectAsync(ResourceData resource, Guid runId)
    {
        if (resource.Pipeline is not null)
        {
            await grains.GetRunGrain(runId).StartAsync();
        }
        else
        {
            // No pipeline: announce to every driver listening for the type, exactly as the original does.
            var message = new DriverMessage
            {
                Event = EventNames.Create,
                Payload = ConveyorJson.SerializeResource(ToWire(resource)),
                Id = MessageIds.ForDispatch(runId.ToString(), "resource", 1),
                RunId = runId.ToString(),
            };
            await dispatcher.DispatchAsync(
                Subjects.Resources(resource.Type),
                message,
                dedupId: runId.ToString(),
                headers: new NATS.Client.Core.NatsHeaders { [Headers.RunId] = runId.ToString() },
                requireConsumer: false);
        }

        // Confirmed; persisted with the next write (a repeat after a crash is harmless: both effects are idempotent).
        state.State.PendingRunId = null;
    }

    /// <summary>Converts stored data to the wire shape.</summary>
    public static Resource ToWire(ResourceData resource, IReadOnlyDictionary<string, string>? extraMetadata = null)
    {
        ArgumentNullException.ThrowIfNull(resource);
        var metadata = new SortedDictionary<string, string>(resource.Metadata, StringComparer.Ordinal);
        if (extraMetadata is not null)
        {
            foreach (var (key, value) in extraMetadata)
            {
                metadata[key] = value;
            }
        }

        return new Resource
        {
            Id = resource.Id,
            Name = resource.Name,
            Pipeline = resource.Pipeline,
            ResourceType = resource.Type,
            Metadata = metadata,
            Spec = JsonSerializer.Deserialize<JsonElement>(resource.Spec),
        };
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Resource {Resource}: side effect of run {RunId} failed; retried on next activation")]
    private static partial void LogSideEffectFailed(ILogger logger, Exception exception, string resource, Guid runId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Resource {Resource}: its creation failed and what was written beside it could not be removed; the next create overwrites it")]
    private static partial void LogCreateNotUndone(ILogger logger, Exception exception, string resource);
}
