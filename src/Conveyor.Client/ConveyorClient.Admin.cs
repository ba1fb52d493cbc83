using System.Globalization;

namespace Conveyor.Client;

/// <content>Secrets of a namespace, API keys, namespaces, queues and health.</content>
public sealed partial class ConveyorClient
{
    /// <summary><c>PUT /secrets/{name}</c>: creates or replaces a secret's value (write-only; never read back).</summary>
    public Task<SecretEntry> PutSecretAsync(string name, string value, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Put, "secrets/" + Segment(name), new PutSecretRequest { Value = value }, ClientJsonContext.Default.PutSecretRequest, ClientJsonContext.Default.SecretEntry, cancellationToken);

    /// <summary><c>GET /secrets/{name}</c>: the secret's version and time, never its value.</summary>
    public Task<SecretEntry> GetSecretAsync(string name, CancellationToken cancellationToken = default) =>
        SendAsync<object, SecretEntry>(HttpMethod.Get, "secrets/" + Segment(name), null, null, ClientJsonContext.Default.SecretEntry, cancellationToken);

    /// <summary><c>GET /secrets</c>: the namespace's secrets by name, without values.</summary>
    public Task<SecretList> ListSecretsAsync(CancellationToken cancellationToken = default) =>
        SendAsync<object, SecretList>(HttpMethod.Get, "secrets", null, null, ClientJsonContext.Default.SecretList, cancellationToken);

    /// <summary><c>DELETE /secrets/{name}</c>.</summary>
    public Task DeleteSecretAsync(string name, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Delete, "secrets/" + Segment(name), cancellationToken);

    /// <summary><c>POST /keys</c> (admin): a new API key; <see cref="ApiKeyEntry.Key"/> is the only time its secret is shown.</summary>
    public Task<ApiKeyEntry> CreateApiKeyAsync(CreateApiKeyRequest request, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Post, "keys", request, ClientJsonContext.Default.CreateApiKeyRequest, ClientJsonContext.Default.ApiKeyEntry, cancellationToken);

    /// <summary><c>GET /keys</c> (admin).</summary>
    public Task<ApiKeyList> ListApiKeysAsync(CancellationToken cancellationToken = default) =>
        SendAsync<object, ApiKeyList>(HttpMethod.Get, "keys", null, null, ClientJsonContext.Default.ApiKeyList, cancellationToken);

    /// <summary><c>GET /keys/{id}</c> (admin).</summary>
    public Task<ApiKeyEntry> GetApiKeyAsync(string id, CancellationToken cancellationToken = default) =>
        SendAsync<object, ApiKeyEntry>(HttpMethod.Get, "keys/" + Segment(id), null, null, ClientJsonContext.Default.ApiKeyEntry, cancellationToken);

    /// <summary><c>DELETE /keys/{id}</c> (admin): revokes the key on every silo at once.</summary>
    public Task RevokeApiKeyAsync(string id, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Delete, "keys/" + Segment(id), cancellationToken);

    /// <summary><c>POST /namespaces</c> (admin).</summary>
    public Task<NamespaceEntry> CreateNamespaceAsync(string name, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Post, "namespaces", new CreateNamespaceRequest { Name = name }, ClientJsonContext.Default.CreateNamespaceRequest, ClientJsonContext.Default.NamespaceEntry, cancellationToken);

    /// <summary><c>GET /namespaces</c> (admin).</summary>
    public Task<NamespaceList> ListNamespacesAsync(CancellationToken cancellationToken = default) =>
        SendAsync<object, NamespaceList>(HttpMethod.Get, "namespaces", null, null, ClientJsonContext.Default.NamespaceList, cancellationToken);

    /// <summary><c>GET /namespaces/{ns}</c> (admin).</summary>
    public Task<NamespaceEntry> GetNamespaceAsync(string name, CancellationToken cancellationToken = default) =>
        SendAsync<object, NamespaceEntry>(HttpMethod.Get, "namespaces/" + Segment(name), null, null, ClientJsonContext.Default.NamespaceEntry, cancellationToken);

    /// <summary><c>DELETE /namespaces/{ns}</c> (admin); with <paramref name="cascade"/>, its unfinished runs are cancelled first.</summary>
    public Task DeleteNamespaceAsync(string name, bool cascade = false, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Delete, "namespaces/" + Segment(name) + (cascade ? "?cascade=true" : ""), cancellationToken);

    /// <summary><c>GET /pipelines/{name}/queue</c>: the pipeline's active and queued runs, in admission order.</summary>
    public Task<PipelineQueue> GetPipelineQueueAsync(string pipeline, CancellationToken cancellationToken = default) =>
        SendAsync<object, PipelineQueue>(HttpMethod.Get, $"pipelines/{Segment(pipeline)}/queue", null, null, ClientJsonContext.Default.PipelineQueue, cancellationToken);

    /// <summary><c>GET /health</c>: liveness, with the server's time.</summary>
    public Task<HealthStatus> GetHealthAsync(CancellationToken cancellationToken = default) =>
        SendAsync<object, HealthStatus>(HttpMethod.Get, "health", null, null, ClientJsonContext.Default.HealthStatus, cancellationToken);

    private static string Number(int value) => value.ToString(CultureInfo.InvariantCulture);
}
