using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Catalog;
using Conveyor.Grains.Runs;
using Conveyor.Grains.Security;
using Conveyor.Grains.Triggers;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

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

    /// <summary>
    /// Outbox: the schedule grain has not confirmed the last write (or the delete) yet. Set in the same write as the
    /// change, cleared once the sync returned; a sync that failed is redone on the next activation or call.
    /// </summary>
    [Id(3)] public bool ScheduleSyncPending { get; set; }
}

/// <summary>
/// A pipeline definition, validated as a DAG and persisted with a revision per write. Webhook keys are not part of
/// it: they are kept encrypted by the namespace's <see cref="ISecretsGrain"/>, so the pipeline (and every run plan
/// copied from it) never holds one.
/// </summary>
internal sealed partial class PipelineGrain(
    [PersistentState("pipeline", ConveyorStorage.Name)] IPersistentState<PipelineState> state,
    IGrainFactory grains,
    IObjectCatalog catalog,
    SecretProtector protector,
    IRunRetentionIndex retention,
    IOptions<ConveyorLimitsOptions> limits,
    TimeProvider time,
    ILogger<PipelineGrain> logger) : Grain, IPipelineGrain
{
    private static readonly TimeSpan SyncRetryDelay = TimeSpan.FromSeconds(5);
    private IGrainTimer? _retry;

    private string Namespace => Names.SplitKey(this.GetPrimaryKeyString())[0];

    private string PipelineName => Names.SplitKey(this.GetPrimaryKeyString())[^1];

    private ISecretsGrain Secrets => grains.GetGrain<ISecretsGrain>(Namespace);

    /// <inheritdoc />
    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        // Lists what this activation serves, also when it was stored before listings existed.
        if (state.State.Pipeline is { } pipeline)
        {
            await catalog.AddAsync(CatalogEntry.Pipeline(Namespace, pipeline));
        }

        try
        {
            await MoveLegacyWebhookSecretsAsync();
            await SyncSchedulesIfPendingAsync();
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Retried by the next activation or write; reading the pipeline must not fail for it.
            LogRepairFailed(logger, ex, this.GetPrimaryKeyString());
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
            var missing = await Secrets.MissingAsync(referenced);
            if (missing.Count > 0)
            {
                var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
                var paths = PipelineValidator.StepPaths(pipeline.Steps);
                for (var i = 0; i < pipeline.Steps.Count; i++)
                {
                    var unknown = pipeline.Steps[i].Secrets.Where(missing.Contains).ToArray();
                    if (unknown.Length > 0)
                    {
                        errors[$"{paths[i]}.secrets"] = unknown.Select(n => $"secret {n} not found in namespace {parts[0]}").ToArray();
                    }
                }

                throw new ConveyorValidationException($"invalid pipeline: {errors.First().Key}: {errors.First().Value[0]}", errors);
            }
        }

        await CheckSubPipelinesAsync(pipeline, parts[0]);

        // Keys go to the namespace's secrets first: the pipeline compared and stored below holds none, so a write that
        // only changes a hook's key is still a change (a new revision) although the stored pipeline looks the same.
        var keyChanged = await StoreWebhookSecretsAsync(pipeline);
        var previous = state.State.Pipeline;
        if (previous is not null && !keyChanged && SameContent.Pipeline(previous, pipeline))
        {
            // Nothing to store. What a write that died half-way could have left undone is done again (both idempotent).
            await catalog.AddAsync(CatalogEntry.Pipeline(parts[0], previous));
            state.State.ScheduleSyncPending |= previous.Schedules.Count > 0;
            await SyncSchedulesOrRetryAsync();
            return new WriteResult<PipelineSpec> { Value = previous, Unchanged = true };
        }

        await catalog.AddAsync(CatalogEntry.Pipeline(parts[0], pipeline));
        pipeline.Revision = state.State.LastRevision + 1;
        pipeline.UpdatedAt = time.GetUtcNow();
        state.State.Pipeline = pipeline;
        state.State.LastRevision = pipeline.Revision;
        state.State.ScheduleSyncPending = pipeline.Schedules.Count > 0 || state.State.HadSchedules;
        state.State.HadSchedules |= pipeline.Schedules.Count > 0;
        await state.WriteStateAsync();
        if (previous is not null && previous.ResourceType != pipeline.ResourceType)
        {
            await catalog.RemoveFilterAsync(CatalogEntry.Pipeline(parts[0], previous));
        }

        await SyncSchedulesOrRetryAsync();
        await DropRemovedWebhookSecretsAsync(pipeline.Webhooks.Select(h => h.Name).ToList());
        return new WriteResult<PipelineSpec> { Value = pipeline };
    }

    /// <summary>
    /// A sub-pipeline step names a pipeline of the namespace that runs for the same resource type (its child run gets
    /// this run's resource). Checked when saved; a pipeline deleted or changed later fails the step when it runs.
    /// </summary>
    private async Task CheckSubPipelinesAsync(PipelineSpec pipeline, string ns)
    {
        var paths = PipelineValidator.StepPaths(pipeline.Steps);
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        for (var i = 0; i < pipeline.Steps.Count; i++)
        {
            if (pipeline.Steps[i] is not { Kind: StepKind.Pipeline, Pipeline: { } name })
            {
                continue;
            }

            var child = await grains.GetGrain<IPipelineGrain>(Names.PipelineKey(ns, name)).GetAsync();
            if (child is null)
            {
                errors[$"{paths[i]}.pipeline"] = [$"step '{pipeline.Steps[i].Id}': pipeline {name} not found in namespace {ns}"];
            }
            else if (child.ResourceType != pipeline.ResourceType)
            {
                errors[$"{paths[i]}.pipeline"] =
                    [$"step '{pipeline.Steps[i].Id}': pipeline {name} runs for resource type {child.ResourceType}, this one for {pipeline.ResourceType} (a child run gets its parent's resource)"];
            }
        }

        if (errors.Count > 0)
        {
            throw new ConveyorValidationException($"invalid pipeline: {errors.First().Key}: {errors.First().Value[0]}", errors);
        }
    }

    /// <inheritdoc />
    public Task<PipelineSpec?> GetAsync()
    {
        if (state.State.Pipeline is null && !state.State.ScheduleSyncPending && _retry is null)
        {
            // Names that never were (or no longer are) a pipeline: webhook deliveries and reads of made-up names must
            // not leave an activation behind each.
            DeactivateOnIdle();
        }

        return Task.FromResult(state.State.Pipeline);
    }

    /// <inheritdoc />
    public async Task<string?> GetWebhookSecretAsync(string hook)
    {
        if (state.State.Pipeline?.Webhooks.Find(h => h.Name == hook) is not { } webhook)
        {
            return null;
        }

        // A pipeline stored before webhook keys were encrypted, on a host without a secrets key to move it with.
        return webhook.Secret.Length > 0 ? webhook.Secret : await Secrets.GetWebhookSecretAsync(PipelineName, hook);
    }

    /// <inheritdoc />
    public async Task<bool> DeleteAsync()
    {
        if (state.State.Pipeline is not { } previous)
        {
            // A delete whose schedule sync failed answered an error; its repeat finishes the sync.
            await SyncSchedulesIfPendingAsync();
            return false;
        }

        state.State.Pipeline = null;
        state.State.ScheduleSyncPending = state.State.HadSchedules;
        await state.WriteStateAsync();
        await catalog.RemoveAsync(CatalogEntry.Pipeline(Namespace, previous));
        await SyncSchedulesOrRetryAsync();
        await DropRemovedWebhookSecretsAsync([]);

        // Its finished runs were only its own: due for deletion now (archived first). Runs still going keep their
        // snapshot and are deleted when their own retention ends.
        await retention.ExpireFinishedAsync(Namespace, previous.Name, time.GetUtcNow());
        return true;
    }

    /// <summary>
    /// The write is stored, so its answer is success whatever the schedule grain does: a failed sync stays in the
    /// outbox and is retried in a few seconds (and by the next activation). Meanwhile the schedule grain checks the
    /// stored pipeline before each fire, so a lost delete never fires again.
    /// </summary>
    private async Task SyncSchedulesOrRetryAsync()
    {
        try
        {
            await SyncSchedulesIfPendingAsync();
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LogRepairFailed(logger, ex, this.GetPrimaryKeyString());
            _retry ??= this.RegisterGrainTimer(
                static (grain, _) => grain.RetrySyncAsync(),
                this,
                new GrainTimerCreationOptions(SyncRetryDelay, SyncRetryDelay) { Interleave = false, KeepAlive = true });
        }
    }

    private async Task RetrySyncAsync()
    {
        await SyncSchedulesIfPendingAsync();
        _retry?.Dispose();
        _retry = null;
    }

    /// <summary>Tells the schedule grain the stored pipeline when a write left that undone, then marks it done.</summary>
    private async Task SyncSchedulesIfPendingAsync()
    {
        if (!state.State.ScheduleSyncPending)
        {
            return;
        }

        await grains.GetGrain<IScheduleGrain>(this.GetPrimaryKeyString()).SyncAsync(state.State.Pipeline);
        state.State.ScheduleSyncPending = false;
        state.State.HadSchedules = state.State.Pipeline?.Schedules.Count > 0;
        await state.WriteStateAsync();
    }

    /// <summary>
    /// Moves each given webhook key into the namespace's secrets (encrypted) and out of the pipeline; a hook given none
    /// keeps the stored one (keys are write-only, so a read-modify-write carries none). A new hook needs one of at
    /// least <see cref="PipelineValidator.MinWebhookSecretLength"/> characters.
    /// </summary>
    private async Task<bool> StoreWebhookSecretsAsync(PipelineSpec pipeline)
    {
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        for (var i = 0; i < pipeline.Webhooks.Count; i++)
        {
            var hook = pipeline.Webhooks[i];
            if (hook.Secret.Length == 0)
            {
                hook.Secret = state.State.Pipeline?.Webhooks.Find(h => h.Name == hook.Name)?.Secret ?? "";
                if (hook.Secret.Length == 0 && await Secrets.GetWebhookSecretAsync(PipelineName, hook.Name) is null)
                {
                    errors[$"webhooks[{i}].secret"] = ["is required for a new webhook"];
                }
            }
            else if (hook.Secret.Length < PipelineValidator.MinWebhookSecretLength)
            {
                errors[$"webhooks[{i}].secret"] = [$"must be at least {PipelineValidator.MinWebhookSecretLength} characters"];
            }
        }

        if (errors.Count > 0)
        {
            throw new ConveyorValidationException($"invalid pipeline: {errors.First().Key}: {errors.First().Value[0]}", errors);
        }

        if (pipeline.Webhooks.Any(h => h.Secret.Length > 0) && !protector.IsAvailable)
        {
            throw new ConveyorConflictException("webhook secrets are stored encrypted, and secrets are not configured on this server: set Conveyor:Secrets:Key (32 random bytes, base64)");
        }

        var changed = false;
        foreach (var hook in pipeline.Webhooks.Where(h => h.Secret.Length > 0))
        {
            changed |= await Secrets.PutWebhookSecretAsync(PipelineName, hook.Name, hook.Secret);
            hook.Secret = "";
        }

        return changed;
    }

    private async Task DropRemovedWebhookSecretsAsync(List<string> keep)
    {
        try
        {
            await Secrets.RemoveWebhookSecretsAsync(PipelineName, keep);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // An orphaned key does nothing: no hook names it, and a new hook of that name must bring its own.
            LogRepairFailed(logger, ex, this.GetPrimaryKeyString());
        }
    }

    /// <summary>Pipelines stored before webhook keys were encrypted keep them in plain text until a key is configured.</summary>
    private async Task MoveLegacyWebhookSecretsAsync()
    {
        if (state.State.Pipeline is not { } pipeline || !pipeline.Webhooks.Any(h => h.Secret.Length > 0) || !protector.IsAvailable)
        {
            return;
        }

        foreach (var hook in pipeline.Webhooks.Where(h => h.Secret.Length > 0))
        {
            await Secrets.PutWebhookSecretAsync(PipelineName, hook.Name, hook.Secret);
            hook.Secret = "";
        }

        await state.WriteStateAsync();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Pipeline {Pipeline}: a deferred step (schedule sync, webhook key move or cleanup) failed; it is retried")]
    private static partial void LogRepairFailed(ILogger logger, Exception exception, string pipeline);
}
