using System.Text.Json;
using System.Text.Json.Serialization;
using Conveyor.Api.Hosting;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Nats;
using Conveyor.Grains.Security;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Conveyor.Api.Security;

/// <summary>One accepted write, as the audit trail records it.</summary>
public sealed record AuditEvent
{
    /// <summary>Unique id (also the JetStream de-duplication id).</summary>
    [JsonPropertyName("id")] public string Id { get; init; } = "";

    /// <summary>When the write was answered.</summary>
    [JsonPropertyName("time")] public DateTimeOffset Time { get; init; }

    /// <summary>The acting API key's id; null when no key acted (authentication off, a webhook).</summary>
    [JsonPropertyName("keyId")] public string? KeyId { get; init; }

    /// <summary>The acting key's name.</summary>
    [JsonPropertyName("keyName")] public string? KeyName { get; init; }

    /// <summary>The acting key's role.</summary>
    [JsonPropertyName("role")] public string? Role { get; init; }

    /// <summary>HTTP method.</summary>
    [JsonPropertyName("method")] public string Method { get; init; } = "";

    /// <summary>The route's template, e.g. <c>/pipelines/{name}/runs</c>.</summary>
    [JsonPropertyName("route")] public string Route { get; init; } = "";

    /// <summary>The request path, e.g. <c>/pipelines/ship/runs</c>.</summary>
    [JsonPropertyName("path")] public string Path { get; init; } = "";

    /// <summary>Namespace of the write; <c>*</c> for keys and namespaces, which belong to none.</summary>
    [JsonPropertyName("namespace")] public string Namespace { get; init; } = "";

    /// <summary>HTTP status of the answer.</summary>
    [JsonPropertyName("status")] public int Status { get; init; }

    /// <summary>The client's address.</summary>
    [JsonPropertyName("client")] public string? Client { get; init; }
}

/// <summary>
/// Records who changed what: every accepted write (POST, PUT, PATCH, DELETE answered 2xx) becomes an
/// <see cref="AuditEvent"/> on JetStream, subject <c>conveyor.audit.{namespace}</c> (stream <c>conveyor-audit</c>),
/// published before the answer is sent. The acting key also travels into the grains the request calls
/// (<see cref="AuditContext"/>), where runs record who triggered, cancelled and retried them.
/// </summary>
/// <remarks>
/// Publishing is best effort: a write that succeeded is not failed because its audit event could not be published
/// (NATS down); the miss is logged as a warning with the event's content.
/// </remarks>
internal sealed partial class AuditTrail(INatsConnection nats, ConveyorOptions options, IOptions<ConveyorNatsOptions> natsOptions, TimeProvider time, ILogger<AuditTrail> logger)
{
    private const string Stream = ConveyorAudit.Stream;
    private const string SubjectPrefix = ConveyorAudit.SubjectPrefix;

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private readonly NatsJSContext _js = new(nats);
    private Task? _stream;

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var key = http.CallerKey();
        if (key is not null)
        {
            RequestContext.Set(AuditContext.ActorKey, key.Id);
        }

        object? result;
        try
        {
            result = await next(context).ConfigureAwait(false);
        }
        finally
        {
            RequestContext.Remove(AuditContext.ActorKey);
        }

        var method = http.Request.Method;
        var answer = result is INestedHttpResult nested ? nested.Result : result;
        // A result without a status (a failed parameter binding answers 400 and runs the filters with an empty result)
        // leaves the response's own.
        var status = answer is IStatusCodeHttpResult { StatusCode: { } code } ? code : http.Response.StatusCode;
        if (options.Audit.Enabled && status is >= 200 and < 300
            && (HttpMethods.IsPost(method) || HttpMethods.IsPut(method) || HttpMethods.IsPatch(method) || HttpMethods.IsDelete(method)))
        {
            await PublishAsync(http, key, status).ConfigureAwait(false);
        }

        return result;
    }

    private async Task PublishAsync(HttpContext http, ApiKeyData? key, int status)
    {
        var route = (http.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? "";
        var global = http.GetEndpoint()?.Metadata.GetMetadata<ConveyorRoleMetadata>()?.Global == true;
        var ns = global ? "*" : http.GetRouteValue("namespace") as string ?? Names.DefaultNamespace;
        var audit = new AuditEvent
        {
            Id = Guid.NewGuid().ToString("N"),
            Time = time.GetUtcNow(),
            KeyId = key?.Id,
            KeyName = key?.Name,
            Role = key?.Role.ToString().ToLowerInvariant(),
            Method = http.Request.Method,
            Route = route,
            Path = http.Request.Path.Value ?? "",
            Namespace = ns,
            Status = status,
            Client = http.Connection.RemoteIpAddress?.ToString(),
        };
        try
        {
            await (_stream ??= EnsureStreamAsync()).ConfigureAwait(false);
            var ack = await _js.PublishAsync(
                SubjectPrefix + (global ? "_global" : ns),
                JsonSerializer.SerializeToUtf8Bytes(audit, Json),
                opts: new NatsJSPubOpts { MsgId = audit.Id },
                cancellationToken: CancellationToken.None).ConfigureAwait(false);
            ack.EnsureSuccess();
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            _stream = null;
            LogNotPublished(logger, ex, audit.Method, audit.Path, audit.KeyId, audit.Status);
        }
    }

    private async Task EnsureStreamAsync() =>
        await _js.CreateOrUpdateStreamAsync(new StreamConfig(Stream, [SubjectPrefix + ">"])
        {
            Retention = StreamConfigRetention.Limits,
            Storage = StreamConfigStorage.File,
            MaxAge = options.Audit.Retention,
            DuplicateWindow = options.Audit.Retention < TimeSpan.FromMinutes(2) ? options.Audit.Retention : TimeSpan.FromMinutes(2),
            // As many copies as the engine's own streams: the trail must survive what they survive.
            NumReplicas = natsOptions.Value.Replicas,
        }).ConfigureAwait(false);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Audit event not published: {Method} {Path} by key {KeyId} answered {Status}")]
    private static partial void LogNotPublished(ILogger logger, Exception exception, string method, string path, string? keyId, int status);
}

/// <summary>Where audit events go.</summary>
public static class ConveyorAudit
{
    /// <summary>The JetStream stream audit events are kept in.</summary>
    public const string Stream = "conveyor-audit";

    /// <summary>
    /// Prefix of the subjects: <c>conveyor.audit.{namespace}</c>, and <c>conveyor.audit._global</c> for keys and
    /// namespaces, which belong to none.
    /// </summary>
    public const string SubjectPrefix = "conveyor.audit.";
}

/// <summary>The audit trail (section <c>Conveyor:Audit</c>).</summary>
public sealed class ConveyorAuditOptions
{
    /// <summary>Publish an audit event for every accepted write (default on).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>How long the <c>conveyor-audit</c> stream keeps events.</summary>
    [System.ComponentModel.DataAnnotations.Range(typeof(TimeSpan), "00:01:00", "3650.00:00:00")]
    public TimeSpan Retention { get; set; } = TimeSpan.FromDays(90);
}
