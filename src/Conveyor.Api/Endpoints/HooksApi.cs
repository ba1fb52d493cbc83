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
using Conveyor.Grains.Security;
using Conveyor.Api.Security;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;

namespace Conveyor.Api.Endpoints;

/// <summary>
/// Webhooks: <c>POST /hooks/{namespace}/{pipeline}/{hook}</c>, authenticated by nothing but an HMAC-SHA256 under the
/// hook's key: GitHub's <c>X-Hub-Signature-256: sha256=&lt;hex&gt;</c> over the raw body, or the timestamped
/// <c>X-Conveyor-Signature-256</c> over <c>&lt;X-Conveyor-Timestamp&gt;.&lt;body&gt;</c>, which a replay cannot reuse
/// once the timestamp is outside the tolerance window.
/// </summary>
internal static class HooksApi
{
    /// <summary>GitHub's signature header: <c>sha256=</c> + hex HMAC-SHA256 of the body.</summary>
    public const string SignatureHeader = "X-Hub-Signature-256";

    /// <summary>The timestamped signature header: <c>sha256=</c> + hex HMAC-SHA256 of <c>&lt;timestamp&gt;.&lt;body&gt;</c>.</summary>
    public const string TimestampedSignatureHeader = "X-Conveyor-Signature-256";

    /// <summary>Unix time in seconds at which the sender signed the delivery.</summary>
    public const string TimestampHeader = "X-Conveyor-Timestamp";

    /// <summary>Maps the route; it allows anonymous callers, since the signature is its authentication.</summary>
    public static RouteHandlerBuilder MapHooksApi(this IEndpointRouteBuilder routes) =>
        routes.MapPost("/hooks/{namespace}/{pipeline}/{hook}", Deliver).Accepts<JsonElement>("application/json")
            .WithTags("Webhooks")
            .WithName("DeliverWebhook")
            .WithSummary("Start a run from a signed webhook delivery; redeliveries and replays are idempotent")
            .AllowAnonymous();

    /// <summary>
    /// 202 with the new run; 200 with the same run for a redelivery (same <c>X-GitHub-Delivery</c> or
    /// <c>Idempotency-Key</c>) or a replay of a signed body within the tolerance window; 401 for a missing, wrong or
    /// stale signature; 404 for an unknown namespace, pipeline or hook; 400 for a body that is not JSON; 422 for a body
    /// that does not map to a valid resource; 429 beyond the hook's rate limit, or for an address that keeps failing.
    /// Nothing is stored on rejection, and nothing is read before the hook is known.
    /// </summary>
    public static async Task<Results<Accepted<WebhookRunResponse>, Ok<WebhookRunResponse>, ProblemHttpResult>> Deliver(
        string pipeline, string hook, RunLauncher launcher, [AsParameters] ApiContext api)
    {
        var services = api.Http.RequestServices;
        var limiter = services.GetRequiredService<ClientAddressLimiter>();
        var guard = services.GetRequiredService<WebhookGuard>();
        if (limiter.IsBlocked(api.Http))
        {
            return ClientAddressLimiter.TooMany(api.Http);
        }

        var ns = api.Namespace;
        Names.Validate(pipeline, "pipeline");
        Names.Validate(hook, "hook");
        var pipelineGrain = api.Grains.GetGrain<IPipelineGrain>(Names.PipelineKey(ns, pipeline));
        var spec = await api.Grains.IsNamespaceActiveAsync(ns) ? await pipelineGrain.GetAsync() : null;
        var webhook = spec?.Webhooks.Find(h => h.Name == hook);
        if (spec is null || webhook is null)
        {
            limiter.RecordFailure(api.Http);
            return Problems.NotFound($"webhook {hook} of pipeline {pipeline} not found");
        }

        var body = await ReadRawAsync(api);
        var secret = await pipelineGrain.GetWebhookSecretAsync(hook);
        var digest = secret is null ? null : VerifySignature(api.Http.Request, webhook, secret, body, guard.Options.SignatureTolerance, api.Http.RequestServices.GetRequiredService<TimeProvider>());
        if (digest is null)
        {
            limiter.RecordFailure(api.Http);
            return Problems.Create(
                StatusCodes.Status401Unauthorized,
                "unauthorized",
                "The webhook signature is missing, wrong or stale.",
                webhook.RequireTimestamp
                    ? $"{TimestampedSignatureHeader} must be 'sha256=' followed by the hex HMAC-SHA256 of '<{TimestampHeader}>.<body>' under the webhook's secret, signed within {guard.Options.SignatureTolerance.TotalSeconds:0} s"
                    : $"{SignatureHeader} must be 'sha256=' followed by the hex HMAC-SHA256 of the body under the webhook's secret (or use the timestamped {TimestampedSignatureHeader})");
        }

        var hookKey = $"{ns}/{pipeline}/{hook}";
        var (allowed, retryAfter) = await guard.AcquireAsync(hookKey);
        if (!allowed)
        {
            api.Http.Response.Headers.RetryAfter = retryAfter.ToString(System.Globalization.CultureInfo.InvariantCulture);
            return Problems.Create(StatusCodes.Status429TooManyRequests, "too-many-requests", "Too many deliveries.",
                $"webhook {hook} of pipeline {pipeline} accepts at most {guard.Options.DeliveryBurst} deliveries at once and {guard.Options.DeliveriesPerSecond} per second; retry after {retryAfter} s");
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

        // The delivery id is not signed: a replay may carry any. The signed body is what identifies a delivery within
        // the window; after it, a redelivery with the same id still finds its run. Without a delivery id the run is
        // keyed by the signature itself.
        var request = new RunRequest(ns, spec, resource!, RunTriggers.Webhook(hook))
        {
            Priority = webhook.Priority,
            TriggerId = delivery ?? "sig:" + digest,
        };
        var runId = RunLauncher.RunIdFor(request);
        var earlier = await guard.ClaimAsync(hookKey, digest, runId);
        RunState run;
        bool created;
        if (earlier is { } first && await api.Grains.GetRunGrain(first).GetAsync() is { } replayed)
        {
            runId = first;
            run = replayed;
            created = false;
        }
        else
        {
            try
            {
                var (started, result) = await launcher.StartAsync(request);
                (runId, run, created) = (started, result.Run, result.Created);
            }
            catch
            {
                await guard.ReleaseAsync(hookKey, digest);
                throw;
            }
        }

        var dto = new WebhookRunResponse { RunId = runId, Status = run.Status, Created = created, Delivery = delivery };
        return created
            ? TypedResults.Accepted($"{api.Settings.Prefix}/namespaces/{ns}/runs/{runId}", dto)
            : TypedResults.Ok(dto);
    }

    /// <summary>
    /// The hex HMAC of a valid signature (it identifies the signed delivery), or null: the timestamped form when the
    /// sender used it (its timestamp within <paramref name="tolerance"/> of now), else GitHub's, unless the hook
    /// requires timestamps.
    /// </summary>
    internal static string? VerifySignature(HttpRequest request, WebhookSpec webhook, string secret, byte[] body, TimeSpan tolerance, TimeProvider time)
    {
        var timestamped = request.Headers[TimestampedSignatureHeader].ToString();
        if (timestamped.Length > 0)
        {
            var stamp = request.Headers[TimestampHeader].ToString();
            if (!long.TryParse(stamp, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var seconds)
                || seconds > DateTimeOffset.MaxValue.ToUnixTimeSeconds()
                || (time.GetUtcNow() - DateTimeOffset.FromUnixTimeSeconds(seconds)).Duration() > tolerance)
            {
                return null;
            }

            var signed = new byte[stamp.Length + 1 + body.Length];
            Encoding.ASCII.GetBytes(stamp, signed);
            signed[stamp.Length] = (byte)'.';
            body.CopyTo(signed, stamp.Length + 1);
            return SignatureMatches(timestamped, secret, signed, out var mac) ? mac : null;
        }

        if (webhook.RequireTimestamp)
        {
            return null;
        }

        return SignatureMatches(request.Headers[SignatureHeader].ToString(), secret, body, out var bodyMac) ? bodyMac : null;
    }

    /// <summary>Constant-time comparison of <c>sha256=&lt;hex&gt;</c> with the HMAC-SHA256 of <paramref name="body"/>.</summary>
    public static bool SignatureMatches(string? header, string secret, ReadOnlySpan<byte> body) => SignatureMatches(header, secret, body, out _);

    private static bool SignatureMatches(string? header, string secret, ReadOnlySpan<byte> signed, out string mac)
    {
        const string prefix = "sha256=";
        mac = "";
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

        var expected = HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), signed);
        mac = Convert.ToHexStringLower(expected);
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
