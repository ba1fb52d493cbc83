using Conveyor.Grains.Abstractions;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Conveyor.Api.Security;

/// <summary>The single requirement of Conveyor's policy: the endpoint's role, in the request's namespace.</summary>
internal sealed class ConveyorAccessRequirement : IAuthorizationRequirement;

/// <summary>
/// Decides a request from the endpoint's <see cref="ConveyorRoleMetadata"/> (admin when missing) and the
/// <c>{namespace}</c> route value (<c>default</c> on the original routes). Not authenticated: the request is
/// challenged (401); authenticated but not allowed: forbidden (403) with the reason.
/// </summary>
internal sealed class ConveyorAuthorizationHandler(ConveyorAuthSettings settings) : AuthorizationHandler<ConveyorAccessRequirement>
{
    public const string PolicyName = "conveyor";

    protected override Task HandleRequirementAsync(AuthorizationHandlerContext context, ConveyorAccessRequirement requirement)
    {
        if (!settings.Enabled)
        {
            context.Succeed(requirement);
            return Task.CompletedTask;
        }

        if (context.Resource is not HttpContext http || http.CallerKey() is not { } key)
        {
            return Task.CompletedTask;
        }

        var metadata = http.GetEndpoint()?.Metadata.GetMetadata<ConveyorRoleMetadata>() ?? new ConveyorRoleMetadata(Grains.Security.ApiRole.Admin, Global: true);
        if (key.Role < metadata.Role)
        {
            return Forbid(context, http, $"this route needs the {metadata.Role.ToString().ToLowerInvariant()} role; the key has {key.Role.ToString().ToLowerInvariant()}");
        }

        var ns = http.GetRouteValue("namespace") as string ?? Names.DefaultNamespace;
        if (!metadata.Global && !key.Covers(ns))
        {
            return Forbid(context, http, $"the API key may not act in namespace {Names.Truncate(ns)}");
        }

        context.Succeed(requirement);
        return Task.CompletedTask;
    }

    private Task Forbid(AuthorizationHandlerContext context, HttpContext http, string reason)
    {
        http.Items[ConveyorAccess.ForbiddenReasonKey] = reason;
        context.Fail(new AuthorizationFailureReason(this, reason));
        return Task.CompletedTask;
    }
}
