using System.Net;
using System.Text.Json;

namespace Conveyor.Client;

/// <summary>
/// The Conveyor API answered with an error status. The details come from an RFC 7807 problem document
/// (<c>application/problem+json</c>), from the original's <c>{"error": "..."}</c> body, or from a plain-text body.
/// </summary>
public sealed class ConveyorApiException : Exception
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

    private ConveyorApiException(
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

    /// <summary>Builds the exception from an error response body.</summary>
    internal static ConveyorApiException FromResponse(HttpStatusCode status, string? mediaType, string body)
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

        return new ConveyorApiException(status, type, title, detail, error, errors, body, message);
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
