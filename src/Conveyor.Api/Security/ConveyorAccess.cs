using Conveyor.Grains.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Conveyor.Api.Security;

/// <summary>
/// The least role an endpoint needs. Every Conveyor endpoint carries either this or <c>AllowAnonymous</c>; an endpoint
/// with neither is treated as admin-only, so a route added without a decision fails closed.
/// </summary>
/// <param name="Role">The least role.</param>
/// <param name="Global">Whether the endpoint acts on no namespace (keys, the namespace registry): admin keys only.</param>
internal sealed record ConveyorRoleMetadata(ApiRole Role, bool Global = false);

/// <summary>Declares the authorization decision of Conveyor endpoints.</summary>
internal static class ConveyorAccess
{
    /// <summary>Readers: objects, runs, logs.</summary>
    public static TBuilder ForViewers<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder => builder.WithMetadata(new ConveyorRoleMetadata(ApiRole.Viewer));

    /// <summary>Writers: definitions, pipelines, resources, secrets, run control.</summary>
    public static TBuilder ForOperators<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder => builder.WithMetadata(new ConveyorRoleMetadata(ApiRole.Operator));

    /// <summary>Administration outside any namespace: keys and namespaces.</summary>
    public static TBuilder ForAdmins<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder => builder.WithMetadata(new ConveyorRoleMetadata(ApiRole.Admin, Global: true));

    /// <summary>
    /// No API key: health probes, the OpenAPI document, and routes that authenticate otherwise (a signature or a
    /// step token). Explicit, so that no route is open by omission.
    /// </summary>
    public static TBuilder Anonymous<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder => builder.AllowAnonymous();

    /// <summary>The key that authenticated the request, or null (anonymous, or authentication off).</summary>
    public static ApiKeyData? CallerKey(this HttpContext context) =>
        context?.Items.TryGetValue(ItemKey, out var key) == true ? key as ApiKeyData : null;

    internal const string ItemKey = "conveyor.apikey";

    internal const string ForbiddenReasonKey = "conveyor.forbidden";
}
