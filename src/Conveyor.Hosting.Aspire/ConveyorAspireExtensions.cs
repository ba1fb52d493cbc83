using Aspire.Hosting.ApplicationModel;

namespace Aspire.Hosting;

/// <summary>
/// Conveyor in a .NET Aspire AppHost: <c>builder.AddConveyor("conveyor")</c> runs a silo with its Redis and NATS;
/// <c>project.WithConveyorServers(redis, nats)</c> points a project that embeds Conveyor (or runs a driver) at them.
/// </summary>
public static class ConveyorAspireExtensions
{
    /// <summary>The silo image's repository and tag (see the container properties of <c>src/Conveyor.Silo</c>).</summary>
    public const string SiloImage = "conveyor-silo";

    /// <inheritdoc cref="SiloImage"/>
    public const string SiloImageTag = "latest";

    /// <summary>
    /// Adds a NATS server with JetStream (<c>nats -js</c>, data in a volume), healthy once its monitoring endpoint's
    /// <c>/healthz</c> answers.
    /// </summary>
    public static IResourceBuilder<ConveyorNatsResource> AddConveyorNats(this IDistributedApplicationBuilder builder, [ResourceName] string name, int? port = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.AddResource(new ConveyorNatsResource(name))
            .WithImage("nats", "2.10-alpine")
            .WithArgs("-js", "-sd", "/data", "-m", "8222")
            .WithVolume($"{name}-data", "/data")
            .WithEndpoint(port: port, targetPort: 4222, scheme: "tcp", name: ConveyorNatsResource.ClientEndpointName)
            .WithHttpEndpoint(targetPort: 8222, name: ConveyorNatsResource.MonitorEndpointName)
            .WithHttpHealthCheck("/healthz", endpointName: ConveyorNatsResource.MonitorEndpointName);
    }

    /// <summary>
    /// Adds a Conveyor silo in cluster mode, wired to <paramref name="redis"/> and <paramref name="nats"/> (both added,
    /// named <c>{name}-redis</c> and <c>{name}-nats</c>, when not given), started once they are up, and healthy once
    /// its <c>/readyz</c> answers. Cluster mode requires API keys: the bootstrap admin key is the secret parameter
    /// <paramref name="bootstrapKey"/>, or <c>{name}-bootstrap-key</c> (configuration <c>Parameters:{name}-bootstrap-key</c>).
    /// </summary>
    public static IResourceBuilder<ConveyorResource> AddConveyor(
        this IDistributedApplicationBuilder builder,
        [ResourceName] string name,
        IResourceBuilder<RedisResource>? redis = null,
        IResourceBuilder<ConveyorNatsResource>? nats = null,
        IResourceBuilder<ParameterResource>? bootstrapKey = null,
        int? port = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        redis ??= builder.AddRedis($"{name}-redis").WithDataVolume();
        nats ??= builder.AddConveyorNats($"{name}-nats");
        bootstrapKey ??= builder.AddParameter($"{name}-bootstrap-key", secret: true);
        return builder.AddResource(new ConveyorResource(name))
            .WithImage(SiloImage, SiloImageTag)
            .WithHttpEndpoint(port: port, targetPort: 8080, name: ConveyorResource.HttpEndpointName)
            .WithEnvironment("Conveyor__Mode", "Cluster")
            .WithEnvironment("Conveyor__Auth__BootstrapKey", bootstrapKey)
            .WithConveyorServers(redis, nats)
            .WithHttpHealthCheck("/readyz", endpointName: ConveyorResource.HttpEndpointName);
    }

    /// <summary>
    /// Points a resource at Conveyor's servers: <c>ConnectionStrings__redis</c> and <c>ConnectionStrings__nats</c>, the
    /// names <c>AddConveyor()</c> in an embedding app and a driver's configuration read; it starts once both are up.
    /// </summary>
    public static IResourceBuilder<T> WithConveyorServers<T>(this IResourceBuilder<T> builder, IResourceBuilder<RedisResource> redis, IResourceBuilder<ConveyorNatsResource> nats)
        where T : IResourceWithEnvironment, IResourceWithWaitSupport
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(redis);
        ArgumentNullException.ThrowIfNull(nats);
        return builder
            .WithEnvironment("ConnectionStrings__redis", redis)
            .WithEnvironment("ConnectionStrings__nats", nats)
            .WaitFor(redis)
            .WaitFor(nats);
    }
}
