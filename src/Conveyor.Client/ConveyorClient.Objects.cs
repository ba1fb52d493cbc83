using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Conveyor.Contracts;

namespace Conveyor.Client;

/// <content>Resource definitions, pipelines and resources.</content>
public sealed partial class ConveyorClient
{
    /// <summary><c>POST /resource-definitions</c>: creates a resource definition (201).</summary>
    public Task<ResourceDefinition> CreateResourceDefinitionAsync(ResourceDefinition definition, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Post, "resource-definitions", definition, ClientJsonContext.Default.ResourceDefinition, ClientJsonContext.Default.ResourceDefinition, cancellationToken);

    /// <summary><c>POST /resource-definitions/apply</c>: creates or replaces a resource definition.</summary>
    public Task<ResourceDefinition> ApplyResourceDefinitionAsync(ResourceDefinition definition, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Post, "resource-definitions/apply", definition, ClientJsonContext.Default.ResourceDefinition, ClientJsonContext.Default.ResourceDefinition, cancellationToken);

    /// <summary><c>GET /resource-definitions/{name}</c>.</summary>
    public Task<ResourceDefinition> GetResourceDefinitionAsync(string name, CancellationToken cancellationToken = default) =>
        SendAsync<object, ResourceDefinition>(HttpMethod.Get, "resource-definitions/" + Segment(name), null, null, ClientJsonContext.Default.ResourceDefinition, cancellationToken);

    /// <summary><c>PUT /resource-definitions/{name}</c> with <paramref name="definition"/>'s name.</summary>
    public Task<ResourceDefinition> UpdateResourceDefinitionAsync(ResourceDefinition definition, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(definition);
        return SendAsync(HttpMethod.Put, "resource-definitions/" + Segment(definition.Name), definition, ClientJsonContext.Default.ResourceDefinition, ClientJsonContext.Default.ResourceDefinition, cancellationToken);
    }

    /// <summary><c>DELETE /resource-definitions/{name}</c> (204).</summary>
    public Task DeleteResourceDefinitionAsync(string name, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Delete, "resource-definitions/" + Segment(name), cancellationToken);

    /// <summary><c>POST /pipelines</c>: creates a pipeline (201, echoed).</summary>
    public Task<Pipeline> CreatePipelineAsync(Pipeline pipeline, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Post, "pipelines", pipeline, ClientJsonContext.Default.Pipeline, ClientJsonContext.Default.Pipeline, cancellationToken);

    /// <summary><c>GET /pipelines/{name}</c>.</summary>
    public Task<Pipeline> GetPipelineAsync(string name, CancellationToken cancellationToken = default) =>
        SendAsync<object, Pipeline>(HttpMethod.Get, "pipelines/" + Segment(name), null, null, ClientJsonContext.Default.Pipeline, cancellationToken);

    /// <summary><c>PUT /pipelines/{name}</c> with <paramref name="pipeline"/>'s name.</summary>
    public Task<Pipeline> UpdatePipelineAsync(Pipeline pipeline, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        return SendAsync(HttpMethod.Put, "pipelines/" + Segment(pipeline.Name), pipeline, ClientJsonContext.Default.Pipeline, ClientJsonContext.Default.Pipeline, cancellationToken);
    }

    /// <summary><c>DELETE /pipelines/{name}</c> (204).</summary>
    public Task DeletePipelineAsync(string name, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Delete, "pipelines/" + Segment(name), cancellationToken);

    /// <summary><c>POST /resources</c>: creates a resource, which starts a run (201).</summary>
    public Task<CreateResourceResponse> CreateResourceAsync(CreateResourceRequest request, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Post, "resources", request, ClientJsonContext.Default.CreateResourceRequest, ClientJsonContext.Default.CreateResourceResponse, cancellationToken);

    /// <summary><c>GET /resources/{type}/{name}</c>.</summary>
    public Task<Resource> GetResourceAsync(string resourceType, string name, CancellationToken cancellationToken = default) =>
        SendAsync<object, Resource>(HttpMethod.Get, $"resources/{Segment(resourceType)}/{Segment(name)}", null, null, ClientJsonContext.Default.Resource, cancellationToken);

    /// <summary><c>PUT /resources/{type}/{name}</c>: replaces the spec and metadata; returns the new version.</summary>
    public Task<Resource> UpdateResourceAsync(Resource resource, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(resource);
        return SendAsync(
            HttpMethod.Put,
            $"resources/{Segment(resource.ResourceType)}/{Segment(resource.Name)}",
            resource,
            ClientJsonContext.Default.Resource,
            ClientJsonContext.Default.Resource,
            cancellationToken);
    }

    /// <summary><c>DELETE /resources/{type}/{name}</c> (204, also when absent; its versions are deleted with it).</summary>
    public Task DeleteResourceAsync(string resourceType, string name, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Delete, $"resources/{Segment(resourceType)}/{Segment(name)}", cancellationToken);

    /// <summary><c>GET /resources/{type}/{name}/{version}</c>: the resource as it was at <paramref name="version"/>.</summary>
    public Task<Resource> GetResourceVersionAsync(string resourceType, string name, int version, CancellationToken cancellationToken = default) =>
        SendAsync<object, Resource>(
            HttpMethod.Get,
            $"resources/{Segment(resourceType)}/{Segment(name)}/{version.ToString(System.Globalization.CultureInfo.InvariantCulture)}",
            null,
            null,
            ClientJsonContext.Default.Resource,
            cancellationToken);
}
