using Conveyor.Grains.Abstractions;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace Conveyor.Api.Http;

/// <summary>
/// Builds RFC 7807 responses. Every problem carries a stable <c>type</c> URI and the original Conveyor's
/// <c>error</c> member, so clients of either kind can read it.
/// </summary>
internal static class Problems
{
    /// <summary>Prefix of every problem type URI.</summary>
    public const string TypePrefix = "urn:conveyor:problem:";

    /// <summary>400: the body or a parameter is invalid.</summary>
    public static ProblemHttpResult BadRequest(string detail, IDictionary<string, string[]>? errors = null) =>
        Create(StatusCodes.Status400BadRequest, "validation", "The request is invalid.", detail, errors);

    /// <summary>404: the object does not exist.</summary>
    public static ProblemHttpResult NotFound(string detail) =>
        Create(StatusCodes.Status404NotFound, "not-found", "The object was not found.", detail);

    /// <summary>409: the request conflicts with the current state.</summary>
    public static ProblemHttpResult Conflict(string detail) =>
        Create(StatusCodes.Status409Conflict, "conflict", "The request conflicts with the current state.", detail);

    /// <summary>413: the body exceeds the size limit.</summary>
    public static ProblemHttpResult TooLarge(long limit) =>
        Create(StatusCodes.Status413PayloadTooLarge, "payload-too-large", "The request body is too large.", $"the request body exceeds {limit} bytes");

    /// <summary>415: the body is not JSON.</summary>
    public static ProblemHttpResult UnsupportedMediaType(string? contentType) =>
        Create(StatusCodes.Status415UnsupportedMediaType, "unsupported-media-type", "The request body must be JSON.", $"Content-Type '{contentType}' is not JSON; send application/json");

    /// <summary>Maps a client error raised by the engine to its response.</summary>
    public static ProblemHttpResult From(ConveyorException exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        return exception switch
        {
            ConveyorLimitExceededException l => LimitExceeded(l),
            RunUnreadableException => Create(StatusCodes.Status500InternalServerError, "run-unreadable", "The run's stored record cannot be read.", exception.Message),
            ConveyorValidationException v => BadRequest(v.Message, v.Errors),
            ConveyorNotFoundException => NotFound(exception.Message),
            ConveyorConflictException => Conflict(exception.Message),
            _ => BadRequest(exception.Message),
        };
    }

    /// <summary>
    /// 400 (<c>limit-exceeded</c>) or 413 (<c>payload-too-large</c>) naming the setting in <c>limit</c> and its value in
    /// <c>limitValue</c>, and the field at fault in <c>errors</c>.
    /// </summary>
    public static ProblemHttpResult LimitExceeded(ConveyorLimitExceededException exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        var result = exception.TooLarge
            ? Create(StatusCodes.Status413PayloadTooLarge, "payload-too-large", "The request is too large.", exception.Message, new Dictionary<string, string[]> { [exception.Field] = [exception.Message] })
            : Create(StatusCodes.Status400BadRequest, "limit-exceeded", "The request exceeds a limit.", exception.Message, new Dictionary<string, string[]> { [exception.Field] = [exception.Message] });
        result.ProblemDetails.Extensions["limit"] = exception.Limit;
        result.ProblemDetails.Extensions["limitValue"] = exception.Value;
        return result;
    }

    /// <summary>
    /// Writes <paramref name="problem"/> as <c>application/problem+json</c> from outside an endpoint (middleware,
    /// authentication). <see cref="IProblemDetailsService.WriteAsync"/> throws when no writer accepts the request —
    /// its default writer declines whenever the <c>Accept</c> header excludes JSON — which turned a client's odd
    /// <c>Accept</c> into a 500 with no body. A problem is always written: through the service when it can, as plain
    /// problem JSON otherwise (what <c>TypedResults.Problem</c> does for endpoints).
    /// </summary>
    public static Task WriteAsync(HttpContext context, ProblemDetails problem)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(problem);
        return TypedResults.Problem(problem).ExecuteAsync(context);
    }

    /// <summary>A problem of any status.</summary>
    public static ProblemHttpResult Create(int status, string type, string title, string detail, IDictionary<string, string[]>? errors = null)
    {
        var problem = new ProblemDetails
        {
            Status = status,
            Type = TypePrefix + type,
            Title = title,
            Detail = detail,
        };
        problem.Extensions["error"] = detail;
        if (errors is { Count: > 0 })
        {
            problem.Extensions["errors"] = errors;
        }

        return TypedResults.Problem(problem);
    }
}
