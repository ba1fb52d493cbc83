using System.Security.Claims;
using System.Text.Encodings.Web;
using Conveyor.Api.Http;
using Conveyor.Grains.Security;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Conveyor.Api.Security;

/// <summary>
/// Authenticates <c>Authorization: Bearer cvk_…</c> by reading the key's grain on every request, so a revoked key
/// stops working at once on every silo. Challenges and forbids with ProblemDetails.
/// </summary>
internal sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    IGrainFactory grains,
    ConveyorAuthSettings settings,
    ClientAddressLimiter limiter,
    UnknownApiKeys unknown)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "ConveyorApiKey";

    private const string FailureKey = "conveyor.authfailure";
    private const string BlockedKey = "conveyor.authblocked";

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (!settings.Enabled)
        {
            return AuthenticateResult.NoResult();
        }

        string? header = Request.Headers.Authorization;
        if (string.IsNullOrEmpty(header))
        {
            return AuthenticateResult.NoResult();
        }

        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return Fail("the Authorization header must be 'Bearer <api key>'");
        }

        var token = header["Bearer ".Length..].Trim();
        if (!ApiKeys.TryParse(token, out var id, out var secret))
        {
            return Fail("the bearer token is not a Conveyor API key (cvk_<id>_<secret>)");
        }

        // Nothing is looked up for an address that keeps failing (but keys that worked here before still do), nor for a
        // key id known not to exist.
        if (!unknown.IsKnownValid(id) && limiter.IsBlocked(Context))
        {
            Context.Items[BlockedKey] = true;
            return AuthenticateResult.Fail("too many failed requests from this address");
        }

        if (unknown.Contains(id))
        {
            return Fail("the API key is not valid");
        }

        var key = await grains.GetGrain<IApiKeyGrain>(id).GetAsync().ConfigureAwait(false);
        if (key is null)
        {
            unknown.Add(id);
            return Fail("the API key is not valid");
        }

        if (!ApiKeys.Matches(secret, key.SecretHash))
        {
            return Fail("the API key is not valid");
        }

        if (key.RevokedAt is not null)
        {
            return Fail("the API key was revoked");
        }

        unknown.MarkValid(id);
        Context.Items[ConveyorAccess.ItemKey] = key;
        var identity = new ClaimsIdentity(
            [new Claim(ClaimTypes.NameIdentifier, key.Id), new Claim(ClaimTypes.Name, key.Name), new Claim(ClaimTypes.Role, key.Role.ToString())],
            SchemeName);
        return AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        if (Context.Items.ContainsKey(BlockedKey) || limiter.IsBlocked(Context))
        {
            await ClientAddressLimiter.TooMany(Context).ExecuteAsync(Context).ConfigureAwait(false);
            return;
        }

        limiter.RecordFailure(Context);
        var failure = Context.Items.TryGetValue(FailureKey, out var f) ? f as string : null;
        Response.Headers.WWWAuthenticate = failure is null ? "Bearer" : "Bearer error=\"invalid_token\"";
        await WriteAsync(StatusCodes.Status401Unauthorized, "unauthorized", "Authentication is required.",
            failure ?? "this route needs an API key: send 'Authorization: Bearer <api key>'").ConfigureAwait(false);
    }

    protected override async Task HandleForbiddenAsync(AuthenticationProperties properties)
    {
        var reason = Context.Items.TryGetValue(ConveyorAccess.ForbiddenReasonKey, out var r) ? r as string : null;
        await WriteAsync(StatusCodes.Status403Forbidden, "forbidden", "The API key may not do this.", reason ?? "the API key may not do this").ConfigureAwait(false);
    }

    private AuthenticateResult Fail(string message)
    {
        Context.Items[FailureKey] = message;
        return AuthenticateResult.Fail(message);
    }

    private async Task WriteAsync(int status, string type, string title, string detail)
    {
        Response.StatusCode = status;
        var problem = new ProblemDetails { Status = status, Type = Problems.TypePrefix + type, Title = title, Detail = detail };
        problem.Extensions["error"] = detail;
        await Problems.WriteAsync(Context, problem).ConfigureAwait(false);
    }
}
