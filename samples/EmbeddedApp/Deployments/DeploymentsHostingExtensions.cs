namespace Shipyard.Deployments;

/// <summary>Registers the deployments feature.</summary>
internal static class DeploymentsHostingExtensions
{
    /// <summary>
    /// Adds the deployments options and the start-up step that applies the feature's Conveyor resource definition and
    /// pipeline. Call it after <c>AddConveyor</c>: hosted services start in registration order, so the silo is up first.
    /// </summary>
    public static IHostApplicationBuilder AddDeployments(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<DeploymentsOptions>()
            .BindConfiguration(DeploymentsOptions.Section)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        builder.Services.AddHostedService<DeploymentPipelineSetup>();
        return builder;
    }
}
