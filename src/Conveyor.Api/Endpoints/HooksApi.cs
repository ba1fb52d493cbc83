using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Conveyor.Client;
using Conveyor.Api.Http;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Resources;
using Conveyor.Grains.Runs;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;

namespace Conveyor.Api.Endpoints;

/// <summary>
/// Webhooks: <c>POST /hooks/{namespace}/{pipeline}/{hook}</c>, authenticated by nothing but the HMAC-SHA256 of the raw
/// body (GitHub's <c>X-Hub-Signature-256: sha256=&lt;hex&gt;</c>) under the hook's secret.
/// </summary>
public static class HooksApi
{
    /// <summary>The signature header.</summary>
    public const string SignatureHeader = "X-Hub-Signature-256";

    /// <summary>Maps the route; it allows anonymous callers, since the signature is its authentication.</summary>
    public static RouteHandlerBuilder MapHooksApi(this IEndpointRouteBuilder routes) =>
        routes.MapPost("/hooks/{namespace}/{pipeline}/{hook}", Deliver).Accepts<JsonElement>("application/json")
            .WithTags("Webhooks")
            .WithName("DeliverWebhook")
            .WithSummary("Start a run from a signed webhook delivery (X-Hub-Signature-256); redeliveries are idempotent")
            .AllowAnonymous();

    /// <summary>
    /// 202 with the new run; 200 with the same run for a redelivery (same <c>X-GitHub-Delivery</c> or
    /// <c>Idempotency-Key</c>); 401 for a missing or wrong signature; 404 for an unknown pipeline or hook; 400 for a
    /// body that is not JSON; 422 for a body that does not map to a valid resource. Nothing is stored on rejection.
    /// </summary>
    public static async Task<Results<Accepted<WebhookRunResponse>, Ok<WebhookRunResponse>, ProblemHttpResult>> Deliver(
        string pipeline, string hook, RunLauncher launcher, [AsParameters] ApiContext api)
    {
        var ns = api.Namespace;
        Names.Validate(pipeline, "pipeline");
        Names.Validate(hook, "hook");
        var body = await ReadRawAsync(api);
        var spec = await api.Grains.GetGrain<IPipelineGrain>(Names.PipelineKey(ns, pipeline)).GetAsync();
        var webhook = spec?.Webhooks.Find(h => h.Name == hook);
        if (spec is null || webhook is null)
        {
            return Problems.NotFound($"webhook {hook} of pipeline {pipeline} not found");
        }

        if (!SignatureMatches(api.Http.Request.Headers[SignatureHeader].ToString(), webhook.Secret, body))
        {
            return Problems.Create(
                StatusCodes.Status401Unauthorized,
                "unauthorized",
                "The webhook signature is missing or wrong.",
                $"{SignatureHeader} must be 'sha256=' followed by the hex HMAC-SHA256 of the body under the webhook's secret");
        }

        JsonNode? payload;
        try
        {
            payload = JsonNode.Parse(body);
        }
        catch (JsonException ex)
        {
            throw new ConveyorValidationException("body", $"the webhook body is not JSON: {ex.Message}");
        }

        var (resource, problem) = await MapAsync(api, ns, spec, webhook, payload);
        if (problem is not null)
        {
            return problem;
        }

        var delivery = FirstHeader(api.Http.Request, "X-GitHub-Delivery", "Idempotency-Key");
        if (delivery is { Length: > 256 })
        {
            throw new ConveyorValidationException("X-GitHub-Delivery", "the delivery id must be at most 256 characters");
        }

        var (runId, result) = await launcher.StartAsync(new RunRequest(ns, spec, resource!, RunTriggers.Webhook(hook))
        {
            Priority = webhook.Priority,
            TriggerId = delivery,
        });
        var dto = new WebhookRunResponse { RunId = runId, Status = result.Run.Status, Created = result.Created, Delivery = delivery };
        return result.Created
            ? TypedResults.Accepted($"{api.Settings.Prefix}/namespaces/{ns}/runs/{runId}", dto)
            : TypedResults.Ok(dto);
    }

    /// <summary>Constant-time comparison of <c>sha256=&lt;hex&gt;</c> with the body's HMAC-SHA256.</summary>
    public static bool SignatureMatches(string? header, string secret, ReadOnlySpan<byte> body)
    {
        const string prefix = "sha256=";
        if (string.IsNullOrEmpty(header) || !header.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) || string.IsNullOrEmpty(secret))
        {
            return false;
        }

        byte[] given;
        try
        {
            given = Convert.FromHexString(header.AsSpan(prefix.Length).Trim());
        }
        catch (FormatException)
        {
            return false;
        }

        var expected = HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), body);
        return CryptographicOperations.FixedTimeEquals(expected, given);
    }

    /// <summary>
    /// Builds the run's resource: the stored resource of the mapped name (if any) with the mapped spec and metadata
    /// fields laid over it, validated against the type's schema. The stored resource itself is not changed.
    /// </summary>
    private static async Task<(ResourceData? Resource, ProblemHttpResult? Problem)> MapAsync(ApiContext api, string ns, PipelineSpec spec, WebhookSpec webhook, JsonNode? payload)
    {
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        string? Lookup(string field, string pointer)
        {
            if (Resolve(payload, pointer) is not { } node)
            {
                errors["resource." + field] = [$"the body has no value at '{pointer}'"];
                return null;
            }

            return node.GetValueKind() == JsonValueKind.String ? node.GetValue<string>() : node.ToJsonString();
        }

        var name = Lookup("name", webhook.Resource["name"]);
        if (name is not null && !Names.IsValid(name))
        {
            errors["resource.name"] = [$"'{Names.Truncate(name)}' (from '{webhook.Resource["name"]}') is not a valid resource name"];
        }

        if (errors.Count > 0)
        {
            return (null, Unprocessable(errors));
        }

        var (stored, _) = await api.Grains.GetGrain<IResourceGrain>(Names.ResourceKey(ns, spec.ResourceType, name!)).GetAsync();
        var specNode = (stored is null ? null : JsonNode.Parse(stored.Spec)) as JsonObject ?? [];
        var metadata = stored is null ? new Dictionary<string, string>(StringComparer.Ordinal) : new Dictionary<string, string>(stored.Metadata, StringComparer.Ordinal);
        foreach (var (field, pointer) in webhook.Resource.Where(f => f.Key != "name"))
        {
            if (field.StartsWith("metadata.", StringComparison.Ordinal))
            {
                if (Lookup(field, pointer) is { } value)
                {
                    metadata[field["metadata.".Length..]] = value;
                }

                continue;
            }

            if (Resolve(payload, pointer) is not { } node)
            {
                errors["resource." + field] = [$"the body has no value at '{pointer}'"];
                continue;
            }

            var target = specNode;
            var path = field["spec.".Length..].Split('.');
            for (var i = 0; i < path.Length - 1; i++)
            {
                if (target[path[i]] is not JsonObject child)
                {
                    target[path[i]] = child = [];
                }

                target = child;
            }

            target[path[^1]] = node.DeepClone();
        }

        if (errors.Count > 0)
        {
            return (null, Unprocessable(errors));
        }

        var resource = new ResourceData
        {
            Id = stored?.Id ?? RunIds.Derive("webhook-resource", ns, spec.ResourceType, name!).ToString(),
            Name = name!,
            Type = spec.ResourceType,
            Pipeline = stored?.Pipeline,
            Metadata = metadata,
            Spec = specNode.ToJsonString(),
            Version = stored?.Version ?? 0,
        };

        var definition = await api.Grains.GetGrain<IResourceDefinitionGrain>(Names.DefinitionKey(ns, spec.ResourceType)).GetAsync();
        if (definition?.Schema is { } schema)
        {
            var invalid = SchemaValidator.Validate(await SchemaValidator.CompileAsync(schema), resource.Spec);
            if (invalid.Count > 0)
            {
                return (null, Unprocessable(invalid.ToDictionary(e => "resource.spec." + e.Key.TrimStart('.'), e => e.Value, StringComparer.Ordinal)));
            }
        }

        return (resource, null);
    }

    /// <summary>RFC 6901 JSON pointer; null when nothing is there.</summary>
    private static JsonNode? Resolve(JsonNode? node, string pointer)
    {
        if (pointer.Length == 0)
        {
            return node;
        }

        foreach (var raw in pointer[1..].Split('/'))
        {
            var token = raw.Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal);
            node = node switch
            {
                JsonObject o => o[token],
                JsonArray a when int.TryParse(token, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var i) && i < a.Count => a[i],
                _ => null,
            };
            if (node is null)
            {
                return null;
            }
        }

        return node;
    }

    private static ProblemHttpResult Unprocessable(Dictionary<string, string[]> errors)
    {
        var first = errors.First();
        return Problems.Create(
            StatusCodes.Status422UnprocessableEntity,
            "unprocessable",
            "The webhook body does not map to a valid resource.",
            $"{first.Key}: {first.Value[0]}",
            errors);
    }

    private static string? FirstHeader(HttpRequest request, params string[] names)
    {
        foreach (var name in names)
        {
            var value = request.Headers[name].ToString();
            if (value.Length > 0)
            {
                return value;
            }
        }

        return null;
    }

    private static async Task<byte[]> ReadRawAsync(ApiContext api)
    {
        var limit = api.Settings.MaxRequestBodyBytes;
        var request = api.Http.Request;
        if (request.ContentLength > limit)
        {
            throw new PayloadTooLargeException(limit);
        }

        var buffer = new ArrayBufferWriter<byte>(4096);
        while (true)
        {
            var read = await request.Body.ReadAsync(buffer.GetMemory(8192), api.Http.RequestAborted);
            if (read == 0)
            {
                return buffer.WrittenSpan.ToArray();
            }

            buffer.Advance(read);
            if (buffer.WrittenCount > limit)
            {
                throw new PayloadTooLargeException(limit);
            }
        }
    }
}
