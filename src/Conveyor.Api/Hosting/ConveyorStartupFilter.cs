using Conveyor.Api.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Logging;

namespace Conveyor.Api.Hosting;

/// <summary>
/// Request handling the original's clients rely on, applied only under Conveyor's route prefix so a host app's own
/// endpoints are untouched: trailing slashes are ignored (<c>/resources/</c> ≡ <c>/resources</c>), and every error
/// response without a body — unknown route (404), wrong method (405), malformed request — becomes ProblemDetails.
/// </summary>
internal sealed partial class ConveyorStartupFilter(ConveyorApiSettings settings, ILogger<ConveyorStartupFilter> logger) : IStartupFilter
{
    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        app.Use(async (context, nextMiddleware) =>
        {
            if (settings.Prefix is not { } prefix || !UnderPrefix(context.Request.Path, prefix))
            {
                await nextMiddleware(context).ConfigureAwait(false);
                return;
            }

            var path = context.Request.Path.Value!;
            if (path.Length > 1 && path.EndsWith('/') && path.Length > prefix.Length + 1
                && !(settings.ReferencePath is { } reference && context.Request.Path.StartsWithSegments(reference, StringComparison.OrdinalIgnoreCase)))
            {
                context.Request.Path = new PathString(path.TrimEnd('/'));
            }

            try
            {
                await nextMiddleware(context).ConfigureAwait(false);
            }
            catch (BadHttpRequestException ex) when (!context.Response.HasStarted)
            {
                await WriteAsync(context, ex.StatusCode, ex.StatusCode == StatusCodes.Status413PayloadTooLarge ? "payload-too-large" : "bad-request", ex.Message).ConfigureAwait(false);
                return;
            }
            catch (Exception ex) when (!context.Response.HasStarted && !context.RequestAborted.IsCancellationRequested)
            {
                LogUnhandled(logger, ex, context.Request.Method, context.Request.Path);
                await WriteAsync(context, StatusCodes.Status500InternalServerError, "internal", "The server failed to process the request; it has been logged.").ConfigureAwait(false);
                return;
            }

            if (context.Response is { HasStarted: false, StatusCode: >= 400, ContentType: null } && context.Response.ContentLength is null or 0)
            {
                var status = context.Response.StatusCode;
                if (status == StatusCodes.Status400BadRequest && context.GetEndpoint() is { } endpoint
                    && QueryParameters.FirstUnparsable(endpoint, context.Request) is var (name, message))
                {
                    // A query value the handler could not bind: a validation problem naming it, like every other.
                    await Problems.BadRequest(message, new Dictionary<string, string[]> { [name] = [message] }).ExecuteAsync(context).ConfigureAwait(false);
                    return;
                }

                var detail = status switch
                {
                    StatusCodes.Status404NotFound => $"Cannot {context.Request.Method} {context.Request.Path}",
                    StatusCodes.Status405MethodNotAllowed => $"Method {context.Request.Method} is not allowed on {context.Request.Path}",
                    _ => $"The request failed with status {status}.",
                };
                await WriteAsync(context, status, status switch { 404 => "not-found", 405 => "method-not-allowed", _ => "error" }, detail).ConfigureAwait(false);
            }
        });
        next(app);
    };

    private static bool UnderPrefix(PathString path, string prefix) =>
        prefix.Length == 0 || path.StartsWithSegments(prefix, StringComparison.OrdinalIgnoreCase);

    private static async Task WriteAsync(HttpContext context, int status, string type, string detail)
    {
        context.Response.StatusCode = status;
        var problem = new ProblemDetails
        {
            Status = status,
            Type = Problems.TypePrefix + type,
            Title = ReasonPhrases.GetReasonPhrase(status),
            Detail = detail,
        };
        problem.Extensions["error"] = detail;
        await Problems.WriteAsync(context, problem).ConfigureAwait(false);
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Unhandled error on {Method} {Path}")]
    private static partial void LogUnhandled(ILogger logger, Exception exception, string method, string path);
}
