using System.Runtime.CompilerServices;

namespace Conveyor.Client;

/// <content>Listings of resource definitions, pipelines and resources, page by page or all at once.</content>
public sealed partial class ConveyorClient
{
    /// <summary><c>GET /resource-definitions</c>: one page of definitions, by name.</summary>
    /// <param name="prefix">Only names that start with this.</param>
    /// <param name="limit">Page size, 1–500 (server default 100).</param>
    /// <param name="cursor"><see cref="ResourceDefinitionPage.NextCursor"/> of the previous page.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    public Task<ResourceDefinitionPage> ListResourceDefinitionsAsync(string? prefix = null, int? limit = null, string? cursor = null, CancellationToken cancellationToken = default) =>
        SendAsync<object, ResourceDefinitionPage>(HttpMethod.Get, Query("resource-definitions", ("prefix", prefix), ("limit", Number(limit)), ("cursor", cursor)), null, null, ClientJsonContext.Default.ResourceDefinitionPage, cancellationToken);

    /// <summary><c>GET /pipelines</c>: one page of pipelines, by name.</summary>
    /// <param name="prefix">Only names that start with this.</param>
    /// <param name="resourceType">Only pipelines that run for this resource type.</param>
    /// <param name="limit">Page size, 1–500 (server default 100).</param>
    /// <param name="cursor"><see cref="PipelinePage.NextCursor"/> of the previous page.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    public Task<PipelinePage> ListPipelinesAsync(string? prefix = null, string? resourceType = null, int? limit = null, string? cursor = null, CancellationToken cancellationToken = default) =>
        SendAsync<object, PipelinePage>(HttpMethod.Get, Query("pipelines", ("prefix", prefix), ("resource", resourceType), ("limit", Number(limit)), ("cursor", cursor)), null, null, ClientJsonContext.Default.PipelinePage, cancellationToken);

    /// <summary>
    /// <c>GET /resources/{type}</c> (by name), or <c>GET /resources</c> (every type, by type then name) when
    /// <paramref name="resourceType"/> is null: one page of resources as stored.
    /// </summary>
    /// <param name="resourceType">Only this type's resources; null for every type.</param>
    /// <param name="prefix">Only names that start with this (needs <paramref name="resourceType"/>).</param>
    /// <param name="pipeline">Only resources that name this pipeline.</param>
    /// <param name="limit">Page size, 1–500 (server default 100).</param>
    /// <param name="cursor"><see cref="ResourcePage.NextCursor"/> of the previous page.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    public Task<ResourcePage> ListResourcesAsync(
        string? resourceType = null, string? prefix = null, string? pipeline = null, int? limit = null, string? cursor = null, CancellationToken cancellationToken = default)
    {
        if (resourceType is null && !string.IsNullOrEmpty(prefix))
        {
            throw new ArgumentException("A name prefix needs a resource type.", nameof(prefix));
        }

        var path = resourceType is null ? "resources" : "resources/" + Segment(resourceType);
        return SendAsync<object, ResourcePage>(HttpMethod.Get, Query(path, ("prefix", prefix), ("pipeline", pipeline), ("limit", Number(limit)), ("cursor", cursor)), null, null, ClientJsonContext.Default.ResourcePage, cancellationToken);
    }

    /// <summary>Every resource definition (matching <paramref name="prefix"/>), following cursors page by page.</summary>
    public async IAsyncEnumerable<ResourceDefinition> ListAllResourceDefinitionsAsync(string? prefix = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        string? cursor = null;
        do
        {
            var page = await ListResourceDefinitionsAsync(prefix, null, cursor, cancellationToken).ConfigureAwait(false);
            foreach (var item in page.Items)
            {
                yield return item;
            }

            cursor = page.NextCursor;
        }
        while (cursor is not null);
    }

    /// <summary>Every pipeline matching the filters, following cursors page by page.</summary>
    public async IAsyncEnumerable<Pipeline> ListAllPipelinesAsync(string? prefix = null, string? resourceType = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        string? cursor = null;
        do
        {
            var page = await ListPipelinesAsync(prefix, resourceType, null, cursor, cancellationToken).ConfigureAwait(false);
            foreach (var item in page.Items)
            {
                yield return item;
            }

            cursor = page.NextCursor;
        }
        while (cursor is not null);
    }

    /// <summary>Every resource matching the filters, following cursors page by page.</summary>
    public async IAsyncEnumerable<Conveyor.Contracts.Resource> ListAllResourcesAsync(
        string? resourceType = null, string? prefix = null, string? pipeline = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        string? cursor = null;
        do
        {
            var page = await ListResourcesAsync(resourceType, prefix, pipeline, null, cursor, cancellationToken).ConfigureAwait(false);
            foreach (var item in page.Items)
            {
                yield return item;
            }

            cursor = page.NextCursor;
        }
        while (cursor is not null);
    }

    private static string? Number(int? value) => value is { } v ? Number(v) : null;

    private static string Query(string path, params (string Name, string? Value)[] parameters)
    {
        var query = string.Join('&', parameters.Where(p => !string.IsNullOrEmpty(p.Value)).Select(p => p.Name + "=" + Uri.EscapeDataString(p.Value!)));
        return query.Length == 0 ? path : path + "?" + query;
    }
}
