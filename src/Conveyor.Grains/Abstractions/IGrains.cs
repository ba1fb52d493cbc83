using Orleans.Concurrency;

namespace Conveyor.Grains.Abstractions;

/// <summary>A resource definition. Key: <see cref="Names.DefinitionKey"/>.</summary>
[Alias("conveyor.IResourceDefinitionGrain")]
public interface IResourceDefinitionGrain : IGrainWithStringKey
{
    /// <summary>Creates the definition; <see cref="ConveyorConflictException"/> when it exists.</summary>
    Task<ResourceDefinitionData> CreateAsync(ResourceDefinitionData definition);

    /// <summary>Creates or replaces the definition; a definition exactly as stored is left alone (unchanged).</summary>
    Task<WriteResult<ResourceDefinitionData>> ApplyAsync(ResourceDefinitionData definition);

    /// <summary>
    /// Replaces an existing definition (left alone when exactly as stored); <see cref="ConveyorNotFoundException"/>
    /// when there is none.
    /// </summary>
    Task<WriteResult<ResourceDefinitionData>> UpdateAsync(ResourceDefinitionData definition);

    /// <summary>The definition, or null.</summary>
    [ReadOnly]
    [AlwaysInterleave]
    Task<ResourceDefinitionData?> GetAsync();

    /// <summary>Deletes the definition; false when there was none.</summary>
    Task<bool> DeleteAsync();

    /// <summary>
    /// Puts the definition's listing entry right after a listing found it missing or stale: removes it when there is
    /// no definition, re-adds it when there is one. Not interleaved, so it waits for a write in progress.
    /// </summary>
    Task<ResourceDefinitionData?> RepairCatalogAsync();
}

/// <summary>A pipeline definition. Key: <see cref="Names.PipelineKey"/>.</summary>
[Alias("conveyor.IPipelineGrain")]
public interface IPipelineGrain : IGrainWithStringKey
{
    /// <summary>
    /// Validates and stores the pipeline (create or replace); returns it with its new revision, or as it was (same
    /// revision) when it is exactly as stored.
    /// </summary>
    Task<PipelineSpec> PutAsync(PipelineSpec pipeline);

    /// <summary>As <see cref="PutAsync"/>, and says whether the pipeline was exactly as stored (nothing written).</summary>
    Task<WriteResult<PipelineSpec>> ApplyAsync(PipelineSpec pipeline);

    /// <summary>The pipeline, or null.</summary>
    [ReadOnly]
    [AlwaysInterleave]
    Task<PipelineSpec?> GetAsync();

    /// <summary>Deletes the pipeline; false when there was none. Runs in flight keep their snapshot.</summary>
    Task<bool> DeleteAsync();

    /// <summary>The HMAC key of webhook <paramref name="hook"/> (decrypted), or null when the pipeline has no such hook.</summary>
    [ReadOnly]
    [AlwaysInterleave]
    Task<string?> GetWebhookSecretAsync(string hook);

    /// <summary>
    /// Puts the pipeline's listing entries right after a listing found one missing or stale: removes them when there
    /// is no pipeline, re-adds them when there is one, and drops the entry under <paramref name="staleResourceType"/>
    /// when the pipeline no longer runs for that type. Not interleaved, so it waits for a write in progress.
    /// </summary>
    Task<PipelineSpec?> RepairCatalogAsync(string? staleResourceType);
}

/// <summary>Result of creating a resource.</summary>
[GenerateSerializer]
[Alias("conveyor.CreateResourceResult")]
public sealed class CreateResourceResult
{
    /// <summary>The stored resource.</summary>
    [Id(0)] public ResourceData Resource { get; set; } = new();

    /// <summary>Id of the run (or event) the creation started.</summary>
    [Id(1)] public Guid RunId { get; set; }
}

/// <summary>A resource with its version history. Key: <see cref="Names.ResourceKey"/>.</summary>
[Alias("conveyor.IResourceGrain")]
public interface IResourceGrain : IGrainWithStringKey
{
    /// <summary>
    /// Validates and stores a new resource, then starts its pipeline run (or announces it to drivers when it has no
    /// pipeline) under <paramref name="runId"/>.
    /// </summary>
    Task<CreateResourceResult> CreateAsync(ResourceData resource, Guid runId);

    /// <summary>
    /// Replaces the resource's spec and metadata and bumps its version; a resource exactly as stored (or as a read
    /// shows it) is left alone: same version, same driver results, no run.
    /// </summary>
    Task<WriteResult<ResourceData>> UpdateAsync(ResourceData resource);

    /// <summary>The current resource (null when absent) and the run whose results belong to it.</summary>
    [ReadOnly]
    [AlwaysInterleave]
    Task<(ResourceData? Resource, Guid? LastRunId)> GetAsync();

    /// <summary>The snapshot stored at <paramref name="version"/>, or null.</summary>
    [ReadOnly]
    [AlwaysInterleave]
    Task<ResourceData?> GetVersionAsync(int version);

    /// <summary>Deletes the resource with all its version snapshots; false when there was none.</summary>
    Task<bool> DeleteAsync();

    /// <summary>
    /// Puts the resource's listing entries right after a listing found one missing or stale: removes them when there
    /// is no resource, re-adds them when there is one, and drops the entry under <paramref name="stalePipeline"/> when
    /// the resource no longer names that pipeline. Not interleaved, so it waits for a write in progress.
    /// </summary>
    Task<ResourceData?> RepairCatalogAsync(string? stalePipeline);
}

/// <summary>One run of a pipeline: its DAG state machine. Key: the run id.</summary>
[Alias("conveyor.IPipelineRunGrain")]
public interface IPipelineRunGrain : IGrainWithGuidKey
{
    /// <summary>
    /// Records the run as pending (durably, with a reminder) before its resource is committed; idempotent.
    /// </summary>
    Task PrepareAsync(RunPlan plan);

    /// <summary>Starts a prepared run: dispatches its first steps; idempotent.</summary>
    Task StartAsync();

    /// <summary>
    /// Creates and starts a run that no resource write guards (manual trigger, schedule, webhook) in one durable step.
    /// Idempotent: when the run exists, returns it untouched with <see cref="CreateRunResult.Created"/> false.
    /// </summary>
    Task<CreateRunResult> CreateAsync(RunPlan plan);

    /// <summary>
    /// Applies a driver result, at most once per (step, attempt), and persists it before returning. Interleaves with
    /// itself on purpose: results that arrive while a write is in flight are applied together and persisted by the
    /// next single write (group commit); each call still returns only after its result is stored.
    /// </summary>
    [AlwaysInterleave]
    Task<ApplyOutcome> ApplyResultAsync(DriverResultInput result);

    /// <summary>
    /// Its admission queue gave the run a slot: a <see cref="Conveyor.Contracts.RunStatus.Queued"/> run starts; a run that already ended
    /// gives the slot back. One-way, so the queue never waits on a run.
    /// </summary>
    [OneWay]
    Task AdmitAsync();

    /// <summary>A newer run of its concurrency group (cancel-in-progress) replaces this one: an unfinished run is cancelled. One-way.</summary>
    [OneWay]
    Task SupersedeAsync(Guid newerRunId);

    /// <summary>The run's state, or null when the run does not exist.</summary>
    [ReadOnly]
    [AlwaysInterleave]
    Task<RunState?> GetAsync();

    /// <summary>
    /// Cancels the run: in-flight steps are cancelled (their drivers get a cancel message), nothing new is dispatched.
    /// <see cref="ConveyorConflictException"/> when the run already ended. <paramref name="actor"/> (an API key id) is
    /// recorded as <see cref="RunState.CancelledBy"/>.
    /// </summary>
    Task<RunState> CancelAsync(string reason, string? actor = null);

    /// <summary>
    /// Starts a Failed, Cancelled or TimedOut run again: a new attempt of every step that did not succeed, keeping the
    /// outputs of those that did. <see cref="ConveyorConflictException"/> for a run in any other status.
    /// <paramref name="actor"/> (an API key id) is recorded as <see cref="RunState.RetriedBy"/>.
    /// </summary>
    Task<RunState> RetryAsync(string? actor = null);

    /// <summary>
    /// Approves or rejects an approval gate, recording who (<paramref name="by"/>, an API key id) and when.
    /// <see cref="ConveyorConflictException"/> unless the step waits for approval.
    /// </summary>
    Task<RunState> ApproveAsync(string step, bool approved, string? by, string? comment);

    /// <summary>Pauses a Running run: nothing new is dispatched; in-flight steps finish. <see cref="ConveyorConflictException"/> otherwise.</summary>
    Task<RunState> PauseAsync(string? by);

    /// <summary>Resumes a Paused run. <see cref="ConveyorConflictException"/> otherwise.</summary>
    Task<RunState> ResumeAsync(string? by);

    /// <summary>
    /// A child run started by the sub-pipeline step <paramref name="step"/> ended. One-way, so a child never waits on its
    /// parent (the parent awaits its children when it starts or cancels them: a call back must not wait, or the two
    /// would deadlock); the parent also asks its running children on its keepalive, so a lost call is found.
    /// </summary>
    [OneWay]
    Task ChildEndedAsync(string step, Guid childRunId, Conveyor.Contracts.RunStatus status, string message, string? outputs);

    /// <summary>The run as listings show it, or null when it does not exist; repairs the run's index entries.</summary>
    Task<RunSummary?> GetSummaryAsync();

    /// <summary>The original's <c>driverresults.&lt;driver&gt;</c> metadata entries produced so far.</summary>
    [ReadOnly]
    [AlwaysInterleave]
    Task<Dictionary<string, string>> GetDriverResultsAsync();

    /// <summary>
    /// A driver is still working on an attempt: it is Running, and (for a step without its own timeout) kept alive
    /// for a lease. One-way: a heartbeat never waits for the run.
    /// </summary>
    [OneWay]
    Task HeartbeatAsync(string step, int attempt, TimeSpan? interval);

    /// <summary>
    /// Deletes a finished run at once: archives it (when an archive is configured), then deletes its logs, index
    /// entries, keepalive and stored record. <see cref="ConveyorConflictException"/> for a run that has not ended;
    /// false when there was no run.
    /// </summary>
    Task<bool> DeleteAsync();
}
