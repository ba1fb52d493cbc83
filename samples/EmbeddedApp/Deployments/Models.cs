namespace Shipyard.Deployments;

/// <summary>Body of <c>POST /deployments</c>.</summary>
/// <param name="Service">Service to deploy: lowercase letters, digits and '-', at most 54 characters.</param>
/// <param name="Image">Container image reference.</param>
internal sealed record DeploymentRequest(string? Service, string? Image);

/// <summary>A deployment and where its pipeline run stands.</summary>
/// <param name="Id">Deployment id: the service name and a random suffix (the Conveyor resource's name).</param>
/// <param name="Service">Deployed service.</param>
/// <param name="Image">Deployed image.</param>
/// <param name="RunId">The Conveyor run that carries the deployment out.</param>
/// <param name="Status">The run's status: <c>Pending</c>, <c>Running</c>, <c>Succeeded</c>, <c>Failed</c>, …</param>
/// <param name="Run">Where the engine shows the run, e.g. <c>/conveyor/runs/{runId}</c>.</param>
internal sealed record Deployment(string Id, string Service, string Image, Guid? RunId, string Status, string? Run);

/// <summary>The <c>spec</c> of a deployment resource.</summary>
internal sealed record DeploymentSpec(string Service, string Image);
