using Aspire.Hosting.ApplicationModel;

namespace Aspire.Hosting;

/// <summary>
/// A NATS server with JetStream, as a container: Conveyor's drivers and engine talk over it. Its connection string
/// is <c>nats://host:port</c>.
/// </summary>
/// <param name="name">The resource's name.</param>
public sealed class ConveyorNatsResource(string name) : ContainerResource(name), IResourceWithConnectionString
{
    /// <summary>Name of the client endpoint (NATS' port 4222).</summary>
    public const string ClientEndpointName = "tcp";

    /// <summary>Name of the monitoring endpoint (NATS' port 8222, <c>/healthz</c>).</summary>
    public const string MonitorEndpointName = "monitor";

    /// <summary>The client endpoint.</summary>
    public EndpointReference ClientEndpoint => new(this, ClientEndpointName);

    /// <inheritdoc />
    public ReferenceExpression ConnectionStringExpression =>
        ReferenceExpression.Create($"nats://{ClientEndpoint.Property(EndpointProperty.HostAndPort)}");
}

/// <summary>
/// A Conveyor silo container (the image <c>dotnet publish src/Conveyor.Silo -t:PublishContainer</c> builds) in
/// cluster mode. Its connection string is the base URL of its HTTP API, for clients, the CLI and tests.
/// </summary>
/// <param name="name">The resource's name.</param>
public sealed class ConveyorResource(string name) : ContainerResource(name), IResourceWithConnectionString
{
    /// <summary>Name of the HTTP endpoint (the silo's port 8080).</summary>
    public const string HttpEndpointName = "http";

    /// <summary>The HTTP API's endpoint.</summary>
    public EndpointReference HttpEndpoint => new(this, HttpEndpointName);

    /// <inheritdoc />
    public ReferenceExpression ConnectionStringExpression => ReferenceExpression.Create($"{HttpEndpoint.Property(EndpointProperty.Url)}");
}
