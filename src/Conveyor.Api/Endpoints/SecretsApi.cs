using System.Text;
using Conveyor.Client;
using Conveyor.Api.Http;
using Conveyor.Api.Security;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Security;
using Conveyor.Grains.Runs;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;

namespace Conveyor.Api.Endpoints;

/// <summary>
/// Secrets: write-only values per namespace (encrypted at rest), and the one route that hands values out — to the
/// driver of a running step, against its step token.
/// </summary>
internal static class SecretsApi
{
    /// <summary>Maps <c>/secrets</c> onto <paramref name="routes"/>; <paramref name="nameSuffix"/> keeps endpoint names unique when mapped twice.</summary>
    public static RouteGroupBuilder MapSecretsApi(this IEndpointRouteBuilder routes, string nameSuffix = "")
    {
        var api = routes.MapGroup("/secrets").WithTags("Secrets");
        api.MapGet("/", ListSecrets).WithName("ListSecrets" + nameSuffix).WithSummary("List secret names and versions (never values)").ForViewers();
        api.MapGet("/{name}", GetSecret).WithName("GetSecret" + nameSuffix).WithSummary("A secret's name and version (never its value)").ForViewers();
        api.MapPut("/{name}", PutSecret).Accepts<PutSecretRequest>("application/json").WithName("PutSecret" + nameSuffix).WithSummary("Create or replace a secret's value; the next fetch sees it").ForOperators();
        api.MapDelete("/{name}", DeleteSecret).WithName("DeleteSecret" + nameSuffix).WithSummary("Delete a secret").ForOperators();
        return api;
    }

    /// <summary>
    /// Maps <c>GET /step-secrets</c> (root only): authenticated by a step token, not an API key; and
    /// <c>POST /secrets/reencrypt</c> (root only, admin): moves every stored value to the primary key.
    /// </summary>
    public static IEndpointRouteBuilder MapStepSecretsApi(this IEndpointRouteBuilder routes)
    {
        routes.MapPost("/secrets/reencrypt", Reencrypt).WithTags("Secrets").WithName("ReencryptSecrets")
            .WithSummary("Re-encrypt every secret and webhook key of every namespace with the primary key (after adding a key)")
            .ForAdmins();
        routes.MapGet("/step-secrets", GetStepSecrets).WithTags("Secrets").WithName("GetStepSecrets")
            .WithSummary("For drivers: the current values of the secrets a running step references, against the step token of its dispatch")
            .Anonymous();
        return routes;
    }

    /// <summary>GET /secrets.</summary>
    public static async Task<Ok<SecretList>> ListSecrets([AsParameters] ApiContext api) =>
        TypedResults.Ok(new SecretList { Items = (await Grain(api).ListAsync()).Select(ApiMapping.ToSecret).ToList() });

    /// <summary>GET /secrets/{name} — 200 or 404.</summary>
    public static async Task<Results<Ok<SecretEntry>, ProblemHttpResult>> GetSecret(string name, [AsParameters] ApiContext api)
    {
        SecretNames.Validate(name, "name");
        var info = (await Grain(api).ListAsync()).FirstOrDefault(s => s.Name == name);
        return info is null ? Problems.NotFound($"secret {name} not found") : TypedResults.Ok(ApiMapping.ToSecret(info));
    }

    /// <summary>PUT /secrets/{name} — 200 with the name and new version.</summary>
    public static async Task<Ok<SecretEntry>> PutSecret(string name, SecretProtector protector, [AsParameters] ApiContext api)
    {
        SecretNames.Validate(name, "name");
        var body = await api.ReadBodyAsync<PutSecretRequest>();
        if (body.Value is null)
        {
            throw new ConveyorValidationException("value", "'value' is required (a string)");
        }

        if (Encoding.UTF8.GetByteCount(body.Value) > SecretNames.MaxValueBytes)
        {
            throw new ConveyorValidationException("value", $"'value' exceeds {SecretNames.MaxValueBytes} bytes");
        }

        if (!protector.IsAvailable)
        {
            throw new ConveyorConflictException("secrets are not configured on this server: set Conveyor:Secrets:Key (32 random bytes, base64)");
        }

        return TypedResults.Ok(ApiMapping.ToSecret(await Grain(api).PutAsync(name, body.Value)));
    }

    /// <summary>DELETE /secrets/{name} — 204 or 404.</summary>
    public static async Task<Results<NoContent, ProblemHttpResult>> DeleteSecret(string name, [AsParameters] ApiContext api)
    {
        SecretNames.Validate(name, "name");
        return await Grain(api).DeleteAsync(name) ? TypedResults.NoContent() : Problems.NotFound($"secret {name} not found");
    }

    /// <summary>POST /secrets/reencrypt — 200 with counts; 409 when no secrets key is configured.</summary>
    public static async Task<Ok<SecretsReencryption>> Reencrypt(SecretProtector protector, [AsParameters] ApiContext api)
    {
        var primary = protector.PrimaryKeyId;
        var namespaces = await api.Grains.GetGrain<INamespaceRegistryGrain>(INamespaceRegistryGrain.Id).ListAsync();
        int secrets = 0, webhooks = 0, unchanged = 0;
        foreach (var ns in namespaces)
        {
            var moved = await api.Grains.GetGrain<ISecretsGrain>(ns.Name).ReencryptAsync();
            secrets += moved.Secrets;
            webhooks += moved.WebhookSecrets;
            unchanged += moved.Unchanged;
        }

        return TypedResults.Ok(new SecretsReencryption { KeyId = primary, Namespaces = namespaces.Count, Secrets = secrets, WebhookSecrets = webhooks, Unchanged = unchanged });
    }

    /// <summary>
    /// GET /step-secrets?name= with <c>Authorization: Bearer &lt;step token&gt;</c>: 200 with the current values of the
    /// secrets the step references (only <c>name</c>'s when given); 401 for a missing, forged or expired token; 403
    /// when the attempt is no longer in flight or the step does not reference <c>name</c>.
    /// </summary>
    public static async Task<Results<Ok<StepSecrets>, ProblemHttpResult>> GetStepSecrets(string? name, SecretProtector protector, [AsParameters] ApiContext api)
    {
        string? header = api.Http.Request.Headers.Authorization;
        var token = header is not null && header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? header["Bearer ".Length..].Trim() : null;
        if (!protector.TryVerifyStepToken(token, out var claims) || claims is null)
        {
            api.Http.Response.Headers.WWWAuthenticate = "Bearer";
            return Problems.Create(StatusCodes.Status401Unauthorized, "unauthorized", "A valid step token is required.",
                "send the step token of the dispatch as 'Authorization: Bearer <token>'; it is missing, invalid or expired");
        }

        var run = await api.Grains.GetRunGrain(claims.RunId).GetAsync();
        // A matrix instance (build[0]) fetches the secrets of its step.
        var step = run?.FindStep(claims.Step);
        var spec = run?.FindSpec(claims.Step);
        if (run is null || step is null || spec is null)
        {
            return Problems.Create(StatusCodes.Status401Unauthorized, "unauthorized", "A valid step token is required.", "the step token names no step of any run");
        }

        if (step.Current?.Number != claims.Attempt || !step.Status.IsInFlight())
        {
            return Forbidden($"attempt {claims.Attempt} of step {claims.Step} is no longer running");
        }

        var names = spec.Secrets;
        if (name is not null)
        {
            if (!spec.Secrets.Contains(name, StringComparer.Ordinal))
            {
                return Forbidden($"step {claims.Step} does not reference secret {Names.Truncate(name)}");
            }

            names = [name];
        }

        var values = await api.Grains.GetGrain<ISecretsGrain>(run.Plan.Namespace).ResolveAsync(names);
        api.Http.Response.Headers.CacheControl = "no-store";
        return TypedResults.Ok(new StepSecrets { Secrets = values });
    }

    private static ProblemHttpResult Forbidden(string detail) =>
        Problems.Create(StatusCodes.Status403Forbidden, "forbidden", "The step token may not do this.", detail);

    private static ISecretsGrain Grain(ApiContext api) => api.Grains.GetGrain<ISecretsGrain>(api.Namespace);
}
