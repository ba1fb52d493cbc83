using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Catalog;
using Conveyor.Grains.Runs;
using Microsoft.Extensions.Options;
using Conveyor.Grains.Security;
using Conveyor.Grains.Triggers;

namespace Conveyor.Grains.Pipelines;

/// <summary>Stored state of a pipeline.</summary>
[GenerateSerializer]
[Alias("conveyor.PipelineState")]
internal sealed class PipelineState
{
    /// <summary>The pipeline; null when deleted or never created.</summary>
    [Id(0)] public PipelineSpec? Pipeline { get; set; }

    /// <summary>Last revision handed out; survives deletion so a re-created pipeline never reuses a revision.</summary>
    [Id(1)] public int LastRevision { get; set; }

    /// <summary>Whether the schedule grain holds schedules of this pipeline (so a change without schedules disarms them).</summary>
    [Id(2)] public bool HadSchedules { get; set; }
}

/// <summary>A pipeline definition, validated as a DAG and persisted with a revision per write.</summary>
internal sealed class PipelineGrain(
    [PersistentState("pipeline", ConveyorStorage.Name)] IPersistentState<PipelineState> state,
    IGrainFactory grains,
    IObjectCatalog catalog,
    IRunRetentionIndex retention,
    IOptions<ConveyorLimitsOptions> limits,
    TimeProvider time) : Grain, IPipelineGrain
{
    private string Namespace => Names.SplitKey(this.GetPrimaryKeyString())[0];

    /// <inheritdoc />
    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        // Lists what this activation serves, also when it was stored before listings existed.
        if (state.State.Pipeline is { } pipeline)
        {
            await catalog.AddAsync(CatalogEntry.Pipeline(Namespace, pipeline));
        }
    }

    /// <inheritdoc />
    public async Task<PipelineSpec?> RepairCatalogAsync(string? staleResourceType)
    {
        var current = state.State.Pipeline;
        if (current is null)
        {
            await catalog.RemoveAsync(new CatalogEntry(Namespace, CatalogKind.Pipeline, this.GetPrimaryKeyString().Split('/')[^1], staleResourceType));
            return null;
        }

        await catalog.AddAsync(CatalogEntry.Pipeline(Namespace, current));
        if (staleResourceType is not null && staleResourceType != current.ResourceType)
        {
            await catalog.RemoveFilterAsync(new CatalogEntry(Namespace, CatalogKind.Pipeline, current.Name, staleResourceType));
        }

        return current;
    }
    /// <inheritdoc />
    public async Task<PipelineSpec> PutAsync(PipelineSpec pipeline) => (await ApplyAsync(pipeline)).Value;

    /// <inheritdoc />
    public async Task<WriteResult<PipelineSpec>> ApplyAsync(PipelineSpec pipeline)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        Limits.CheckPipeline(pipeline, limits.Value);
        PipelineValidator.ValidateAndNormalize(pipeline);
        var parts = Names.SplitKey(this.GetPrimaryKeyString());
        if (!string.Equals(pipeline.Name, parts[^1], StringComparison.Ordinal))
        {
            throw new ConveyorValidationException("name", $"'name' ({pipeline.Name}) does not match the name in the URL ({parts[^1]}).");
        }

        var definition = await grains.GetGrain<IResourceDefinitionGrain>(Names.DefinitionKey(parts[0], pipeline.ResourceType)).GetAsync();
        if (definition is null)
        {
            throw new ConveyorNotFoundException($"resource definition with name {pipeline.ResourceType} not found");
        }

        var referenced = pipeline.Steps.SelectMany(s => s.Secrets).Distinct(StringComparer.Ordinal).ToList();
        if (referenced.Count > 0)
        {
            var missing = await grains.GetGrain<ISecretsGrain>(parts[0]).MissingAsync(referenced);
            if (missing.Count > 0)
            {
                var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
                for (var i = 0; i < pipeline.Steps.Count; i++)
                {
                    var unknown = pipeline.Steps[i].Secrets.Where(missing.Contains).ToArray();
                    if (unknown.Length > 0)
                    {
                        errors[$"steps[{i}].secrets"] = unknown.Select(n => $"secret {n} not found in namespace {parts[0]}").ToArray();
                    }
                }

                throw new ConveyorValidationException($"invalid pipeline: {errors.First().Key}: {errors.First().Value[0]}", errors);
            }
        }

        // Webhook secrets are write-only, so a client that read the pipeline and writes it back has none to send:
        // an omitted secret keeps the one stored for the webhook of the same name.
        foreach (var hook in pipeline.Webhooks.Where(h => h.Secret.Length == 0))
        {
            hook.Secret = state.State.Pipeline?.Webhooks.Find(h => h.Name == hook.Name)?.Secret ?? "";
        }

        PipelineValidator.ValidateWebhookSecrets(pipeline);
        var previous = state.State.Pipeline;
        if (previous is not null && SameContent.Pipeline(previous, pipeline))
        {
            // Nothing to store. What a write that died half-way could have left undone is done again (both idempotent).
            await catalog.AddAsync(CatalogEntry.Pipeline(parts[0], previous));
            if (previous.Schedules.Count > 0)
            {
                await grains.GetGrain<IScheduleGrain>(this.GetPrimaryKeyString()).SyncAsync(previous);
            }

            return new WriteResult<PipelineSpec> { Value = previous, Unchanged = true };
        }

        await catalog.AddAsync(CatalogEntry.Pipeline(parts[0], pipeline));
        pipeline.Revision = state.State.LastRevision + 1;
        pipeline.UpdatedAt = time.GetUtcNow();
        state.State.Pipeline = pipeline;
        state.State.LastRevision = pipeline.Revision;
        var hadSchedules = state.State.HadSchedules;
        state.State.HadSchedules |= pipeline.Schedules.Count > 0;
        await state.WriteStateAsync();
        if (previous is not null && previous.ResourceType != pipeline.ResourceType)
        {
            await catalog.RemoveFilterAsync(CatalogEntry.Pipeline(parts[0], previous));
        }

        if (pipeline.Schedules.Count > 0 || hadSchedules)
        {
            await grains.GetGrain<IScheduleGrain>(this.GetPrimaryKeyString()).SyncAsync(pipeline);
        }

        return new WriteResult<PipelineSpec> { Value = pipeline };
    }

    /// <inheritdoc />
    public Task<PipelineSpec?> GetAsync() => Task.FromResult(state.State.Pipeline);

    /// <inheritdoc />
    public async Task<bool> DeleteAsync()
    {
        if (state.State.Pipeline is not { } previous)
        {
            return false;
        }

        state.State.Pipeline = null;
        await state.WriteStateAsync();
        await catalog.RemoveAsync(CatalogEntry.Pipeline(Namespace, previous));
        if (state.State.HadSchedules)
        {
            await grains.GetGrain<IScheduleGrain>(this.GetPrimaryKeyString()).SyncAsync(null);
            state.State.HadSchedules = false;
            await state.WriteStateAsync();
        }

        // Its finished runs were only its own: due for deletion now (archived first). Runs still going keep their
        // snapshot and are deleted when their own retention ends.
        await retention.ExpireFinishedAsync(Namespace, previous.Name, time.GetUtcNow());
        return true;
    }
}
