using System.Net;
using Conveyor.Api.Hosting;
using Conveyor.Api.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Conveyor.Api.Security;

/// <summary>
/// What keeps a host without API keys (a single node, by default) to its own machine's programs. Every browser on the
/// machine can reach <c>127.0.0.1</c>, and a page may send it simple requests — a POST with no <c>Content-Type</c>,
/// no preflight — or rebind its own DNS name to it and read the answers. So while authentication is off:
/// <list type="bullet">
/// <item>a write (POST, PUT, PATCH, DELETE) that a browser marks as coming from another origin — <c>Sec-Fetch-Site</c>
/// other than <c>same-origin</c>/<c>none</c>, or an <c>Origin</c> that is not the API's own nor in
/// <see cref="ConveyorAuthOptions.AllowedOrigins"/> — is refused with 403 (<c>cross-site-request</c>); programs such as
/// curl and the SDKs send neither header and are not affected;</item>
/// <item>a request whose <c>Host</c> is a name other than <c>localhost</c> (or <c>*.localhost</c>) and
/// <see cref="ConveyorAuthOptions.AllowedHosts"/> is refused with 400 (<c>unknown-host</c>): a rebound name never
/// reaches a handler (an IP literal cannot be rebound, so it passes);</item>
/// <item>the host refuses to start when its URLs name a non-loopback address (and stops when it bound one anyway), unless
/// <see cref="ConveyorAuthOptions.AllowUnauthenticatedRemoteAccess"/> says the host authenticates requests itself.</item>
/// </list>
/// With authentication on, none of this applies: a page cannot attach an API key to a request.
/// </summary>
internal sealed partial class LocalAccessGuard(ConveyorAuthSettings auth, ConveyorApiSettings api, ILogger<LocalAccessGuard> logger) : IStartupFilter
{
    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        if (!auth.Enabled)
        {
            RefuseRemoteBindings(app);
            app.Use(InvokeAsync);
        }

        next(app);
    };

    private async Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        if (api.Prefix is not { } prefix || (prefix.Length > 0 && !context.Request.Path.StartsWithSegments(prefix, StringComparison.OrdinalIgnoreCase)))
        {
            await next(context).ConfigureAwait(false);
            return;
        }

        if (!IsAllowedHost(context.Request.Host))
        {
            await WriteAsync(context, StatusCodes.Status400BadRequest, "unknown-host", "The Host header names another server.",
                $"this server answers requests for localhost or its IP address while authentication is off, not for '{Abbreviate(context.Request.Host.Host)}' (add it to Conveyor:Auth:AllowedHosts, or turn authentication on)").ConfigureAwait(false);
            return;
        }

        if (IsWrite(context.Request.Method) && CrossSiteReason(context.Request) is { } reason)
        {
            await WriteAsync(context, StatusCodes.Status403Forbidden, "cross-site-request", "A web page of another site may not change this server.",
                $"{reason}; while authentication is off only programs and this server's own pages may write (add the origin to Conveyor:Auth:AllowedOrigins, or turn authentication on)").ConfigureAwait(false);
            return;
        }

        await next(context).ConfigureAwait(false);
    }

    private bool IsAllowedHost(HostString host)
    {
        if (!host.HasValue)
        {
            return true;
        }

        var name = host.Host.TrimEnd('.');
        return name.Equals("localhost", StringComparison.OrdinalIgnoreCase)
            || name.EndsWith(".localhost", StringComparison.OrdinalIgnoreCase)
            || IPAddress.TryParse(name.Trim('[', ']'), out _)
            || auth.Options.AllowedHosts.Contains(name, StringComparer.OrdinalIgnoreCase);
    }

    /// <summary>Why a browser's write comes from elsewhere, or null when it is same-origin (or not from a browser).</summary>
    private string? CrossSiteReason(HttpRequest request)
    {
        var site = request.Headers["Sec-Fetch-Site"].ToString();
        if (site.Length > 0 && !site.Equals("same-origin", StringComparison.OrdinalIgnoreCase) && !site.Equals("none", StringComparison.OrdinalIgnoreCase))
        {
            return $"the browser says this request comes from a {Abbreviate(site)} page";
        }

        var origin = request.Headers.Origin.ToString();
        if (origin.Length == 0)
        {
            return null;
        }

        var own = $"{request.Scheme}://{request.Host}";
        return origin.Equals(own, StringComparison.OrdinalIgnoreCase) || auth.Options.AllowedOrigins.Contains(origin, StringComparer.OrdinalIgnoreCase)
            ? null
            : $"the request comes from a page of {Abbreviate(origin)}";
    }

    /// <summary>Stops a host that bound a non-loopback address its configuration did not name (Kestrel endpoints set in code).</summary>
    private void RefuseRemoteBindings(IApplicationBuilder app)
    {
        if (auth.Options.AllowUnauthenticatedRemoteAccess)
        {
            return;
        }

        var lifetime = app.ApplicationServices.GetRequiredService<IHostApplicationLifetime>();
        lifetime.ApplicationStarted.Register(() =>
        {
            if (app.ServerFeatures.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault(a => !IsLoopback(a)) is { } bound)
            {
                LogRefused(logger, bound);
                lifetime.StopApplication();
            }
        });
    }

    /// <summary>
    /// Refuses to start, before the silo or anything else does, when the configured URLs (<c>Urls</c>,
    /// <c>Kestrel:Endpoints:*:Url</c>) name a non-loopback address while authentication is off.
    /// </summary>
    internal sealed class StartCheck(ConveyorAuthSettings auth, Microsoft.Extensions.Configuration.IConfiguration configuration) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            if (auth.Enabled || auth.Options.AllowUnauthenticatedRemoteAccess)
            {
                return Task.CompletedTask;
            }

            var urls = (configuration["urls"] ?? configuration["ASPNETCORE_URLS"] ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Concat(configuration.GetSection("Kestrel:Endpoints").GetChildren().Select(e => e["Url"]).OfType<string>());
            return urls.FirstOrDefault(u => !IsLoopback(u)) is { } remote
                ? throw new InvalidOperationException(Refusal(remote))
                : Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private static string Refusal(string address) =>
        $"Conveyor refuses to listen on {address} without authentication: anyone who reaches it could run any pipeline. " +
        "Listen on a loopback address (http://127.0.0.1:8080), or turn authentication on (Conveyor:Auth:Enabled=true), " +
        "or — only when this host authenticates requests itself — set Conveyor:Auth:AllowUnauthenticatedRemoteAccess=true.";

    internal static bool IsLoopback(string address)
    {
        BindingAddress parsed;
        try
        {
            parsed = BindingAddress.Parse(address);
        }
        catch (FormatException)
        {
            return false;
        }

        if (parsed.IsUnixPipe)
        {
            return true;
        }

        var host = parsed.Host.Trim('[', ']');
        return host.Equals("localhost", StringComparison.OrdinalIgnoreCase) || (IPAddress.TryParse(host, out var ip) && IPAddress.IsLoopback(ip));
    }

    private static bool IsWrite(string method) =>
        HttpMethods.IsPost(method) || HttpMethods.IsPut(method) || HttpMethods.IsPatch(method) || HttpMethods.IsDelete(method);

    private static string Abbreviate(string value) => value.Length <= 100 ? value : value[..100] + "…";

    private static Task WriteAsync(HttpContext context, int status, string type, string title, string detail)
    {
        context.Response.StatusCode = status;
        return Problems.WriteAsync(context, Problems.Create(status, type, title, detail).ProblemDetails);
    }

    [LoggerMessage(Level = LogLevel.Critical, Message = "Conveyor refuses to listen on {Address} without authentication: anyone who reaches it could run any pipeline. Stopping. Listen on a loopback address, turn authentication on (Conveyor:Auth:Enabled=true), or set Conveyor:Auth:AllowUnauthenticatedRemoteAccess=true only when this host authenticates requests itself.")]
    private static partial void LogRefused(ILogger logger, string address);
}
