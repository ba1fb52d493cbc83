using Conveyor.Client;
using Conveyor.Api.Http;
using Conveyor.Api.Security;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;

namespace Conveyor.Api.Endpoints;

/// <summary>API keys (admin): create (the secret is shown once), list and get without the secret, revoke.</summary>
internal static class KeysApi
{
    /// <summary>Maps the routes onto <paramref name="routes"/>.</summary>
    public static RouteGroupBuilder MapKeysApi(this IEndpointRouteBuilder routes)
    {
        var api = routes.MapGroup("/keys").WithTags("Security");
        api.MapPost("/", CreateKey).Accepts<CreateApiKeyRequest>("application/json").WithName("CreateApiKey").WithSummary("Create an API key; the response is the only place its secret appears").ForAdmins();
        api.MapGet("/", ListKeys).WithName("ListApiKeys").WithSummary("List API keys, without their secrets").ForAdmins();
        api.MapGet("/{id}", GetKey).WithName("GetApiKey").WithSummary("Get an API key, without its secret").ForAdmins();
        api.MapDelete("/{id}", RevokeKey).WithName("RevokeApiKey").WithSummary("Revoke an API key; it stops working at once").ForAdmins();
        return api;
    }

    /// <summary>POST /keys — 201 with the key (<c>key</c> holds the full secret, only here).</summary>
    public static async Task<Created<ApiKeyEntry>> CreateKey(TimeProvider time, [AsParameters] ApiContext api)
    {
        var body = await api.ReadBodyAsync<CreateApiKeyRequest>();
        var errors = new Dictionary<string, string[]>();
        var name = body.Name?.Trim() ?? "";
        if (name.Length is 0 or > 100)
        {
            errors["name"] = ["'name' is required, 1-100 characters"];
        }

        ApiRole role = default;
        if (body.Role is not ("admin" or "operator" or "viewer") || !Enum.TryParse(body.Role, ignoreCase: true, out role))
        {
            errors["role"] = ["'role' must be admin, operator or viewer"];
        }

        var namespaces = body.Namespaces ?? [];
        if (namespaces.Count > 100)
        {
            errors["namespaces"] = ["at most 100 namespaces"];
        }
        else if (namespaces.Any(n => n != "*" && !Names.IsValid(n)))
        {
            errors["namespaces"] = ["each namespace must be '*' or a DNS label"];
        }
        else if (role != ApiRole.Admin && namespaces.Count == 0 && !errors.ContainsKey("role"))
        {
            errors["namespaces"] = ["operator and viewer keys need at least one namespace ('*' for all)"];
        }

        if (errors.Count > 0)
        {
            throw new ConveyorValidationException(string.Join("; ", errors.Values.SelectMany(v => v)), errors);
        }

        var (id, key) = ApiKeys.Generate();
        var secret = key[(ApiKeys.Prefix.Length + id.Length + 1)..];
        var stored = await api.Grains.GetGrain<IApiKeyGrain>(id).CreateAsync(new ApiKeyData
        {
            Id = id,
            Name = name,
            Role = role,
            Namespaces = role == ApiRole.Admin ? ["*"] : namespaces.Distinct(StringComparer.Ordinal).ToList(),
            SecretHash = ApiKeys.Hash(secret),
            CreatedAt = time.GetUtcNow(),
        });
        await api.Grains.GetGrain<IApiKeyRegistryGrain>(IApiKeyRegistryGrain.Id).AddAsync(id);
        return TypedResults.Created($"keys/{id}", ApiMapping.ToApiKey(stored, key));
    }

    /// <summary>GET /keys — every key, revoked ones included, never a secret.</summary>
    public static async Task<Ok<ApiKeyList>> ListKeys([AsParameters] ApiContext api)
    {
        var ids = await api.Grains.GetGrain<IApiKeyRegistryGrain>(IApiKeyRegistryGrain.Id).ListAsync();
        var keys = await Task.WhenAll(ids.Select(id => api.Grains.GetGrain<IApiKeyGrain>(id).GetAsync()));
        return TypedResults.Ok(new ApiKeyList { Items = keys.OfType<ApiKeyData>().Select(k => ApiMapping.ToApiKey(k)).ToList() });
    }

    /// <summary>GET /keys/{id} — 200 or 404.</summary>
    public static async Task<Results<Ok<ApiKeyEntry>, ProblemHttpResult>> GetKey(string id, [AsParameters] ApiContext api)
    {
        ValidateId(id);
        var key = await api.Grains.GetGrain<IApiKeyGrain>(id).GetAsync();
        return key is null ? Problems.NotFound($"API key {id} not found") : TypedResults.Ok(ApiMapping.ToApiKey(key));
    }

    /// <summary>DELETE /keys/{id} — 204 (also when already revoked) or 404.</summary>
    public static async Task<Results<NoContent, ProblemHttpResult>> RevokeKey(string id, [AsParameters] ApiContext api)
    {
        ValidateId(id);
        return await api.Grains.GetGrain<IApiKeyGrain>(id).RevokeAsync() ? TypedResults.NoContent() : Problems.NotFound($"API key {id} not found");
    }

    private static void ValidateId(string id)
    {
        if (id.Length is 0 or > 64 || !id.All(c => char.IsAsciiDigit(c) || char.IsAsciiLetterLower(c)))
        {
            throw new ConveyorValidationException("id", $"'{Names.Truncate(id)}' is not an API key id");
        }
    }
}
