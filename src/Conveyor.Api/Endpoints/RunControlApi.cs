using Conveyor.Api.Http;
using Conveyor.Api.Security;
using Conveyor.Client;
using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Events;
using Conveyor.Grains.Runs;
using Conveyor.Grains.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;

namespace Conveyor.Api.Endpoints;

/// <summary>
/// Run control of the pipeline language: approve or reject an approval gate, pause and resume a run, and follow run
/// and step transitions live (Server-Sent Events, resumable with <c>Last-Event-ID</c>).
/// </summary>
internal static class RunControlApi
{
    /// <summary>Maps the routes onto <paramref name="routes"/>; <paramref name="nameSuffix"/> keeps endpoint names unique when mapped twice.</summary>
    public static RouteGroupBuilder MapRunControlApi(this IEndpointRouteBuilder routes, string nameSuffix = "")
    {
        var api = routes.MapGroup("/runs").WithTags("Runs");
        api.MapPost("/{id}/steps/{step}/approve", ApproveStep).Accepts<ApprovalRequest>(isOptional: true, "application/json").WithName("ApproveStep" + nameSuffix)
            .WithSummary("Approve an approval gate: the step succeeds and the run goes on; the record keeps who and when").ForOperators();
        api.MapPost("/{id}/steps/{step}/reject", RejectStep).Accepts<ApprovalRequest>(isOptional: true, "application/json").WithName("RejectStep" + nameSuffix)
            .WithSummary("Reject an approval gate: the step fails (and fail-fast applies)").ForOperators();
        api.MapPost("/{id}/pause", PauseRun).WithName("PauseRun" + nameSuffix)
            .WithSummary("Pause a running run: nothing new is dispatched, in-flight steps finish; its deadlines keep running").ForOperators();
        api.MapPost("/{id}/resume", ResumeRun).WithName("ResumeRun" + nameSuffix).WithSummary("Resume a paused run").ForOperators();
        api.MapGet("/{id}/events", StreamRunEvents).Produces<string>(StatusCodes.Status200OK, "text/event-stream").WithName("StreamRunEvents" + nameSuffix)
            .WithSummary("A run's transitions as Server-Sent Events, from the start or after Last-Event-ID, until it ends").ForViewers();
        api.MapGet("/events", StreamNamespaceEvents).Produces<string>(StatusCodes.Status200OK, "text/event-stream").WithName("StreamNamespaceEvents" + nameSuffix)
            .WithSummary("Every run's transitions in the namespace as Server-Sent Events (optionally one pipeline's, or to one status), resumable").ForViewers();
        return api;
    }

    /// <summary>POST /runs/{id}/steps/{step}/approve — 200 with the run; 403 when the gate needs an admin; 409 unless it waits for approval.</summary>
    public static Task<Results<Ok<RunInfo>, ProblemHttpResult>> ApproveStep(string id, string step, [AsParameters] ApiContext api) =>
        DecideAsync(id, step, approved: true, api);

    /// <summary>POST /runs/{id}/steps/{step}/reject — as approve; the step fails.</summary>
    public static Task<Results<Ok<RunInfo>, ProblemHttpResult>> RejectStep(string id, string step, [AsParameters] ApiContext api) =>
        DecideAsync(id, step, approved: false, api);

    /// <summary>POST /runs/{id}/pause — 200 with the run; 409 unless it is Running.</summary>
    public static async Task<Ok<RunInfo>> PauseRun(string id, [AsParameters] ApiContext api)
    {
        var (grain, _) = await FindAsync(id, api);
        return TypedResults.Ok(ApiMapping.ToRunInfo(await grain.PauseAsync(api.Http.CallerKey()?.Id)));
    }

    /// <summary>POST /runs/{id}/resume — 200 with the run; 409 unless it is Paused.</summary>
    public static async Task<Ok<RunInfo>> ResumeRun(string id, [AsParameters] ApiContext api)
    {
        var (grain, _) = await FindAsync(id, api);
        return TypedResults.Ok(ApiMapping.ToRunInfo(await grain.ResumeAsync(api.Http.CallerKey()?.Id)));
    }

    /// <summary>
    /// GET /runs/{id}/events — the run's transitions so far, then live, ending with <c>event: end</c> once it has ended;
    /// resumes after <c>Last-Event-ID</c> (or <c>?after=</c>). 404 before streaming when there is no such run.
    /// </summary>
    public static async Task<EmptyHttpResult> StreamRunEvents(string id, string? after, RunEventFeed feed, TimeProvider time, [AsParameters] ApiContext api)
    {
        var position = Position(api, after);
        var (grain, run) = await FindAsync(id, api);
        await new RunEventStream
        {
            Feed = feed,
            Filter = Subjects.RunEvents(run.Plan.Namespace, run.Plan.Pipeline.Name, run.RunId),
            After = position,
            Run = grain,
        }.WriteAsync(api.Http, time);
        return TypedResults.Empty;
    }

    /// <summary>
    /// GET /runs/events?pipeline=&amp;status= — every run's transitions in the namespace (or one pipeline's), only those
    /// after which the run has <c>status</c> when given; what the stream keeps first, then live, until the client leaves.
    /// </summary>
    public static async Task<EmptyHttpResult> StreamNamespaceEvents(string? pipeline, string? status, string? after, RunEventFeed feed, TimeProvider time, [AsParameters] ApiContext api)
    {
        var position = Position(api, after);
        if (pipeline is not null)
        {
            Names.Validate(pipeline, "pipeline");
        }

        var wanted = RunsApi.ParseStatusFilter(status);

        await new RunEventStream { Feed = feed, Filter = Subjects.RunEventsOf(api.Namespace, pipeline), After = position, Status = wanted }.WriteAsync(api.Http, time);
        return TypedResults.Empty;
    }

    private static async Task<Results<Ok<RunInfo>, ProblemHttpResult>> DecideAsync(string id, string step, bool approved, ApiContext api)
    {
        Names.Validate(step, "step");
        var (grain, run) = await FindAsync(id, api);
        var hasBody = api.Http.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody ?? api.Http.Request.ContentLength > 0;
        var body = hasBody ? await api.ReadBodyAsync<ApprovalRequest>() : null;
        if (body?.Comment is { Length: > 1024 })
        {
            throw new ConveyorValidationException("comment", "'comment' must be at most 1024 characters");
        }

        var key = api.Http.CallerKey();
        // The route lets operators in; a gate that names admin as its approvers needs an admin key.
        if (key is not null && run.FindSpec(step) is { Kind: StepKind.Approval, Approvers: "admin" } && key.Role < ApiRole.Admin)
        {
            return Problems.Create(StatusCodes.Status403Forbidden, "forbidden", "The API key may not do this.",
                $"approval step {step} must be decided by an admin key; the key has the {key.Role.ToString().ToLowerInvariant()} role");
        }

        return TypedResults.Ok(ApiMapping.ToRunInfo(await grain.ApproveAsync(step, approved, key?.Id, body?.Comment)));
    }

    private static RunEventPosition Position(ApiContext api, string? after)
    {
        var lastEventId = api.Http.Request.Headers["Last-Event-ID"].ToString();
        var (text, field) = !string.IsNullOrEmpty(lastEventId) ? (lastEventId, "Last-Event-ID") : (after, "after");
        if (string.IsNullOrEmpty(text))
        {
            return default;
        }

        return RunEventPosition.TryParse(text, out var position)
            ? position
            : throw new ConveyorValidationException(field, $"'{Names.Truncate(text)}' is not an event id of this feed ('<sequence>.<index>', as sent in 'id:')");
    }

    private static async Task<(IPipelineRunGrain Grain, RunState Run)> FindAsync(string id, ApiContext api)
    {
        if (!Guid.TryParse(id, out var runId))
        {
            throw new ConveyorValidationException("id", $"'{Names.Truncate(id)}' is not a run id (UUID)");
        }

        var grain = api.Grains.GetRunGrain(runId);
        var run = await grain.GetAsync();
        return run is null || run.Plan.Namespace != api.Namespace ? throw new ConveyorNotFoundException($"run {runId} not found") : (grain, run);
    }
}
