using System.Security.Cryptography;
using System.Text.Json;
using Conveyor.Api.Hosting;
using Conveyor.Grains.Abstractions;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Orleans;
using Conveyor.Contracts;

namespace Shipyard.Deployments;

/// <summary>
/// The app's own deployments endpoints. A deployment is a Conveyor resource whose pipeline does the work; the handlers
/// talk to the embedded engine's grains directly, in process, rather than over its HTTP API.
/// </summary>
internal static class DeploymentsApi
{
    /// <summary>Longest service name: a resource name (63 characters) minus the '-' and 8 hex digits of the id suffix.</summary>
    private const int MaxServiceLength = 54;

    public static RouteGroupBuilder MapDeploymentsApi(this IEndpointRouteBuilder routes)
    {
        var api = routes.MapGroup("/deployments").WithTags("Deployments");
        api.MapPost("/", CreateDeployment).WithName("CreateDeployment").WithSummary("Deploy an image of a service");
        api.MapGet("/{id}", GetDeployment).WithName("GetDeployment").WithSummary("A deployment and the status of its run");
        return api;
    }

    /// <summary>POST /deployments — 202 with the deployment; its pipeline run goes on in the background.</summary>
    public static async Task<Results<Accepted<Deployment>, ValidationProblem, ProblemHttpResult>> CreateDeployment(
        DeploymentRequest request,
        [AsParameters] DeploymentServices services)
    {
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        if (request.Service is not { Length: <= MaxServiceLength } service || !Names.IsValid(service))
        {
            errors["service"] = [$"must be 1-{MaxServiceLength} lowercase letters, digits or '-', starting and ending with a letter or digit"];
        }

        if (string.IsNullOrWhiteSpace(request.Image) || request.Image.Length > 255 || request.Image.Any(char.IsWhiteSpace))
        {
            errors["image"] = ["must be an image reference such as nginx:1.27"];
        }

        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors);
        }

        var options = services.Options.Value;
        var id = $"{request.Service}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}";
        var resource = new ResourceData
        {
            Name = id,
            Type = options.ResourceType,
            Pipeline = options.Pipeline,
            Spec = JsonSerializer.Serialize(new DeploymentSpec(request.Service!, request.Image!), JsonSerializerOptions.Web),
        };

        CreateResourceResult created;
        try
        {
            created = await services.Grains
                .GetGrain<IResourceGrain>(Names.ResourceKey(Names.DefaultNamespace, options.ResourceType, id))
                .CreateAsync(resource, Guid.NewGuid());
        }
        catch (ConveyorNotFoundException ex)
        {
            // Someone deleted the pipeline or the resource type through the engine's API; a restart applies them again.
            return TypedResults.Problem(ex.Message, statusCode: StatusCodes.Status503ServiceUnavailable, title: "Deployments are not set up");
        }

        var status = await RunStatusAsync(services.Grains, created.RunId);
        return TypedResults.Accepted(
            $"/deployments/{id}",
            new Deployment(id, request.Service!, request.Image!, created.RunId, status, RunLink(services.Conveyor, created.RunId)));
    }

    /// <summary>GET /deployments/{id} — 200 with the run's current status, or 404.</summary>
    public static async Task<Results<Ok<Deployment>, NotFound>> GetDeployment(string id, [AsParameters] DeploymentServices services)
    {
        if (!Names.IsValid(id))
        {
            return TypedResults.NotFound();
        }

        var options = services.Options.Value;
        var (resource, runId) = await services.Grains
            .GetGrain<IResourceGrain>(Names.ResourceKey(Names.DefaultNamespace, options.ResourceType, id))
            .GetAsync();
        if (resource is null)
        {
            return TypedResults.NotFound();
        }

        var spec = JsonSerializer.Deserialize<DeploymentSpec>(resource.Spec, JsonSerializerOptions.Web);
        var status = runId is { } run ? await RunStatusAsync(services.Grains, run) : "Unknown";
        return TypedResults.Ok(new Deployment(id, spec?.Service ?? "", spec?.Image ?? "", runId, status, runId is { } r ? RunLink(services.Conveyor, r) : null));
    }

    private static async Task<string> RunStatusAsync(IGrainFactory grains, Guid runId) =>
        (await grains.GetGrain<IPipelineRunGrain>(runId).GetAsync())?.Status.ToString() ?? nameof(RunStatus.Pending);

    private static string RunLink(ConveyorApiSettings conveyor, Guid runId) => $"{conveyor.Prefix}/runs/{runId}";
}

/// <summary>What the deployments handlers need from DI.</summary>
internal sealed record DeploymentServices(IGrainFactory Grains, IOptions<DeploymentsOptions> Options, ConveyorApiSettings Conveyor);
