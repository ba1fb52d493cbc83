using System.Net;
using System.Text.Json;

namespace Conveyor.Client;

/// <summary>
/// The Conveyor API answered with an error status. The details come from an RFC 7807 problem document
/// (<c>application/problem+json</c>), from the original's <c>{"error": "..."}</c> body, or from a plain-text body.
/// </summary>
public class ConveyorApiException : Exception
{
    private static readonly IReadOnlyDictionary<string, string[]> NoErrors = new Dictionary<string, string[]>();

    /// <summary>Creates the exception.</summary>
    public ConveyorApiException()
        : this("The Conveyor API returned an error.")
    {
    }

    /// <summary>Creates the exception.</summary>
    public ConveyorApiException(string message)
        : base(message)
    {
        Errors = NoErrors;
    }

    /// <summary>Creates the exception.</summary>
    public ConveyorApiException(string message, Exception innerException)
        : base(message, innerException)
    {
        Errors = NoErrors;
    }

    /// <summary>Creates the exception from a parsed answer (see <see cref="FromResponse"/>).</summary>
    private protected ConveyorApiException(
        HttpStatusCode status,
        string? type,
        string? title,
        string? detail,
        string? error,
        IReadOnlyDictionary<string, string[]> errors,
        string body,
        string message)
        : base(message)
    {
        Status = status;
        Type = type;
        Title = title;
        Detail = detail;
        Error = error;
        Errors = errors;
        Body = body;
    }

    /// <summary>HTTP status of the response.</summary>
    public HttpStatusCode Status { get; }

    /// <summary>Problem type URI (<c>type</c>).</summary>
    public string? Type { get; }

    /// <summary>Short summary of the problem type (<c>title</c>).</summary>
    public string? Title { get; }

    /// <summary>Explanation of this occurrence (<c>detail</c>), or the plain-text body.</summary>
    public string? Detail { get; }

    /// <summary>The original API's <c>error</c> member, when present.</summary>
    public string? Error { get; }

    /// <summary>Validation errors by field (<c>errors</c> of a validation problem); empty when none.</summary>
    public IReadOnlyDictionary<string, string[]> Errors { get; }

    /// <summary>The raw response body.</summary>
    public string Body { get; } = "";

    /// <summary>
    /// Builds the exception from an error response body: a <see cref="ConveyorValidationApiException"/> (400, 422),
    /// <see cref="ConveyorAccessApiException"/> (401, 403), <see cref="ConveyorNotFoundApiException"/> (404),
    /// <see cref="ConveyorConflictApiException"/> (409) or <see cref="ConveyorRateLimitApiException"/> (429), else
    /// this base type.
    /// </summary>
    internal static ConveyorApiException FromResponse(HttpStatusCode status, string? mediaType, string body, TimeSpan? retryAfter = null)
    {
        string? type = null, title = null, detail = null, error = null;
        IReadOnlyDictionary<string, string[]> errors = NoErrors;
        var parsed = false;
        if (body.Length > 0 && (mediaType is null || mediaType.Contains("json", StringComparison.OrdinalIgnoreCase)))
        {
            try
            {
                using var document = JsonDocument.Parse(body);
                if (document.RootElement.ValueKind == JsonValueKind.Object)
                {
                    var root = document.RootElement;
                    type = GetString(root, "type");
                    title = GetString(root, "title");
                    detail = GetString(root, "detail");
                    error = GetString(root, "error");
                    errors = GetErrors(root);
                    parsed = true;
                }
            }
            catch (JsonException)
            {
                // Not JSON after all: keep the body as text.
            }
        }

        if (!parsed && !string.IsNullOrWhiteSpace(body))
        {
            detail = body.Trim();
        }

        var summary = detail ?? error ?? title ?? status.ToString();
        var message = $"Conveyor API returned {(int)status} {status}: {summary}";
        if (errors.Count > 0)
        {
            message += " (" + string.Join("; ", errors.Select(e => $"{e.Key}: {string.Join(", ", e.Value)}")) + ")";
        }

        return status switch
        {
            HttpStatusCode.BadRequest or HttpStatusCode.UnprocessableEntity => new ConveyorValidationApiException(status, type, title, detail, error, errors, body, message),
            HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden => new ConveyorAccessApiException(status, type, title, detail, error, errors, body, message),
            HttpStatusCode.NotFound => new ConveyorNotFoundApiException(status, type, title, detail, error, errors, body, message),
            HttpStatusCode.Conflict => new ConveyorConflictApiException(status, type, title, detail, error, errors, body, message),
            HttpStatusCode.TooManyRequests => new ConveyorRateLimitApiException(status, type, title, detail, error, errors, body, message) { RetryAfter = retryAfter },
            _ => new ConveyorApiException(status, type, title, detail, error, errors, body, message),
        };
    }

    private static string? GetString(JsonElement root, string name) =>
        root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static IReadOnlyDictionary<string, string[]> GetErrors(JsonElement root)
    {
        if (!root.TryGetProperty("errors", out var errors) || errors.ValueKind != JsonValueKind.Object)
        {
            return NoErrors;
        }

        var result = new Dictionary<string, string[]>(StringComparer.Ordinal);
        foreach (var property in errors.EnumerateObject())
        {
            result[property.Name] = property.Value.ValueKind switch
            {
                JsonValueKind.Array => [.. property.Value.EnumerateArray().Select(v => v.ValueKind == JsonValueKind.String ? v.GetString() ?? "" : v.GetRawText())],
                JsonValueKind.String => [property.Value.GetString() ?? ""],
                _ => [property.Value.GetRawText()],
            };
        }

        return result;
    }
}

/// <summary>400 or 422: the request is invalid; <see cref="ConveyorApiException.Errors"/> names each field at fault.</summary>
public sealed class ConveyorValidationApiException : ConveyorApiException
{
    internal ConveyorValidationApiException(HttpStatusCode status, string? type, string? title, string? detail, string? error, IReadOnlyDictionary<string, string[]> errors, string body, string message)
        : base(status, type, title, detail, error, errors, body, message)
    {
    }
}

/// <summary>401 (no key, or a malformed, unknown or revoked one) or 403 (the key may not do this).</summary>
public sealed class ConveyorAccessApiException : ConveyorApiException
{
    internal ConveyorAccessApiException(HttpStatusCode status, string? type, string? title, string? detail, string? error, IReadOnlyDictionary<string, string[]> errors, string body, string message)
        : base(status, type, title, detail, error, errors, body, message)
    {
    }
}

/// <summary>404: the object, the run or the namespace does not exist (or belongs to another namespace).</summary>
public sealed class ConveyorNotFoundApiException : ConveyorApiException
{
    internal ConveyorNotFoundApiException(HttpStatusCode status, string? type, string? title, string? detail, string? error, IReadOnlyDictionary<string, string[]> errors, string body, string message)
        : base(status, type, title, detail, error, errors, body, message)
    {
    }
}

/// <summary>409: the request conflicts with the current state (the object exists, the run already ended, …).</summary>
public sealed class ConveyorConflictApiException : ConveyorApiException
{
    internal ConveyorConflictApiException(HttpStatusCode status, string? type, string? title, string? detail, string? error, IReadOnlyDictionary<string, string[]> errors, string body, string message)
        : base(status, type, title, detail, error, errors, body, message)
    {
    }
}

/// <summary>429: the key made more writes than its limit allows; try again after <see cref="RetryAfter"/>.</summary>
public sealed class ConveyorRateLimitApiException : ConveyorApiException
{
    internal ConveyorRateLimitApiException(HttpStatusCode status, string? type, string? title, string? detail, string? error, IReadOnlyDictionary<string, string[]> errors, string body, string message)
        : base(status, type, title, detail, error, errors, body, message)
    {
    }

    /// <summary>How long to wait before the next write (the <c>Retry-After</c> header), when the server said.</summary>
    public TimeSpan? RetryAfter { get; init; }
}
