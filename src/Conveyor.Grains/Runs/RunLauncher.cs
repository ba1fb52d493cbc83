using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Security;

namespace Conveyor.Grains.Runs;

/// <summary>A request to start a run of a pipeline for a resource, whatever triggered it.</summary>
/// <param name="Namespace">The namespace of the pipeline and the resource.</param>
/// <param name="Pipeline">The pipeline as it is now (the run keeps this snapshot).</param>
/// <param name="Resource">The resource as it is now (the run keeps this snapshot).</param>
/// <param name="Trigger">What started it: <see cref="RunTriggers"/>.</param>
internal sealed record RunRequest(string Namespace, PipelineSpec Pipeline, ResourceData Resource, string Trigger)
{
    /// <summary>Priority, <see cref="RunPriority.Min"/>–<see cref="RunPriority.Max"/>.</summary>
    public int Priority { get; init; } = RunPriority.Default;

    /// <summary>
    /// What identifies the trigger event (a schedule's occurrence, a webhook's delivery id, a manual trigger's
    /// idempotency key): the same event always names the same run. Null: every request is a new run.
    /// </summary>
    public string? TriggerId { get; init; }

    /// <summary>Run parameters as a raw JSON object, or null.</summary>
    public string? Params { get; init; }

    /// <summary>The run's id when the caller derived it already (a sub-pipeline step's child); null derives it here.</summary>
    public Guid? RunId { get; init; }

    /// <summary>The run whose sub-pipeline step starts this one, and that step; null for a run a trigger starts.</summary>
    public (Guid RunId, string Step, int Depth)? Parent { get; init; }
}

/// <summary>
/// The one owner of starting a run: every trigger — a resource with a pipeline, <c>POST /pipelines/{name}/runs</c>, a
/// schedule, a webhook — comes through here. It derives the run's id from the trigger, builds the run's plan in
/// <see cref="PlanAsync"/> (the single place a rule that must hold for every new run belongs), and creates the run.
/// </summary>
/// <remarks>Grains call it, so its awaits stay on the caller's context (no <c>ConfigureAwait(false)</c>).</remarks>
internal sealed class RunLauncher(IGrainFactory grains)
{
    /// <summary>
    /// Creates and starts the run in one durable step (manual, schedule and webhook triggers, which no other write
    /// guards). Idempotent by <see cref="RunRequest.TriggerId"/>: the same trigger event answers the run it started,
    /// with <see cref="CreateRunResult.Created"/> false.
    /// </summary>
    public async Task<(Guid RunId, CreateRunResult Result)> StartAsync(RunRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var plan = await PlanAsync(request);
        var runId = RunIdFor(request);
        var result = await grains.GetRunGrain(runId).CreateAsync(plan);
        return (runId, result);
    }

    /// <summary>
    /// Records the run as pending before the resource that triggers it is stored; the resource then starts it with
    /// <see cref="IPipelineRunGrain.StartAsync"/> (or the run gives up on its own if the resource never commits).
    /// </summary>
    /// <param name="request">The request (trigger <see cref="RunTriggers.Resource"/>).</param>
    /// <param name="runId">The id the resource records for the run.</param>
    public async Task PrepareAsync(RunRequest request, Guid runId)
    {
        ArgumentNullException.ThrowIfNull(request);
        var plan = await PlanAsync(request);
        await grains.GetRunGrain(runId).PrepareAsync(plan);
    }

    /// <summary>
    /// The plan of a new run: every start passes here before any run state exists, so a check that must hold for
    /// every new run (whatever triggered it) goes in this method and covers all triggers at once. A namespace that is
    /// deleted or being deleted starts nothing (404), and the plan records the API key the request acts as.
    /// </summary>
    private async Task<RunPlan> PlanAsync(RunRequest request)
    {
        await grains.EnsureNamespaceActiveAsync(request.Namespace);
        return new RunPlan
        {
            Namespace = request.Namespace,
            Pipeline = request.Pipeline,
            Resource = request.Resource,
            Priority = request.Priority,
            Trigger = request.Trigger,
            TriggerId = request.TriggerId,
            Params = request.Params,
            TriggeredBy = AuditContext.Actor,
            ParentRunId = request.Parent?.RunId,
            ParentStep = request.Parent?.Step,
            Depth = request.Parent is { } parent ? parent.Depth + 1 : 0,
        };
    }

    /// <summary>
    /// A new id, or — with a trigger id — one derived from the namespace, pipeline, trigger and trigger id, so that a
    /// repeated trigger event (a client retry, a redelivered webhook, a re-fired schedule tick) addresses the run it
    /// started: <c>manual</c>, <c>webhook:&lt;hook&gt;</c> and <c>schedule:&lt;name&gt;</c> derive from
    /// (kind, namespace, pipeline, [name,] trigger id).
    /// </summary>
    public static Guid RunIdFor(RunRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.RunId is { } known)
        {
            return known;
        }

        if (request.TriggerId is not { } triggerId)
        {
            return Guid.NewGuid();
        }

        var colon = request.Trigger.IndexOf(':', StringComparison.Ordinal);
        return colon < 0
            ? RunIds.Derive(request.Trigger, request.Namespace, request.Pipeline.Name, triggerId)
            : RunIds.Derive(request.Trigger[..colon], request.Namespace, request.Pipeline.Name, request.Trigger[(colon + 1)..], triggerId);
    }
}
