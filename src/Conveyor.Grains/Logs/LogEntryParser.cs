using System.Buffers;
using System.Text;
using System.Text.Json;
using Conveyor.Contracts;

namespace Conveyor.Grains.Logs;

/// <summary>
/// Reads log entries the way every driver writes them: the original's <c>runid</c> or the Python and Rust SDKs'
/// <c>run_id</c> (keys matched case-insensitively, like Go's decoder), <c>pipeline</c> possibly null, optional
/// <c>labels</c>, unknown keys ignored; a value of the wrong type is kept as its JSON text rather than rejected.
/// </summary>
internal static class LogEntryParser
{
    private static readonly SearchValues<char> SubjectSeparators = SearchValues.Create(". *>\t\r\n");

    /// <summary>
    /// Whether <paramref name="runId"/> can name a run's log: one NATS subject token (no dots, spaces, <c>*</c> or
    /// <c>&gt;</c>), at most 256 characters.
    /// </summary>
    public static bool IsValidRunId(string? runId) =>
        runId is { Length: > 0 and <= 256 } && !runId.AsSpan().ContainsAny(SubjectSeparators);

    /// <summary>Parses <paramref name="body"/>; null when it is not a JSON object.</summary>
    public static LogEntry? Parse(ReadOnlySpan<byte> body)
    {
        try
        {
            var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = 64 });
            using var document = JsonDocument.ParseValue(ref reader);
            return document.RootElement.ValueKind == JsonValueKind.Object ? FromObject(document.RootElement) : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>
    /// Cuts <paramref name="message"/> to at most <paramref name="maxBytes"/> UTF-8 bytes (on a character boundary) and
    /// appends <c>… [truncated N bytes]</c>, N being the bytes cut; returns it unchanged when it fits.
    /// </summary>
    public static string Truncate(string message, int maxBytes)
    {
        ArgumentNullException.ThrowIfNull(message);
        var total = Encoding.UTF8.GetByteCount(message);
        if (total <= maxBytes)
        {
            return message;
        }

        // Walk characters (never splitting a surrogate pair) until the next one would not fit.
        var kept = 0;
        var bytes = 0;
        while (kept < message.Length)
        {
            var width = char.IsHighSurrogate(message[kept]) && kept + 1 < message.Length ? 2 : 1;
            var size = Encoding.UTF8.GetByteCount(message.AsSpan(kept, width));
            if (bytes + size > maxBytes)
            {
                break;
            }

            bytes += size;
            kept += width;
        }

        return string.Concat(message.AsSpan(0, kept), $"… [truncated {total - bytes} bytes]");
    }

    private static LogEntry FromObject(JsonElement root)
    {
        string? runId = null;
        string? runIdSnake = null;
        string driver = "", pipeline = "", timestamp = "", message = "";
        Dictionary<string, string>? labels = null;
        foreach (var property in root.EnumerateObject())
        {
            var name = property.Name;
            if (name.Equals("runid", StringComparison.OrdinalIgnoreCase))
            {
                runId = Text(property.Value);
            }
            else if (name.Equals("run_id", StringComparison.OrdinalIgnoreCase))
            {
                runIdSnake = Text(property.Value);
            }
            else if (name.Equals("driver", StringComparison.OrdinalIgnoreCase))
            {
                driver = Text(property.Value);
            }
            else if (name.Equals("pipeline", StringComparison.OrdinalIgnoreCase))
            {
                pipeline = Text(property.Value);
            }
            else if (name.Equals("timestamp", StringComparison.OrdinalIgnoreCase))
            {
                timestamp = Text(property.Value);
            }
            else if (name.Equals("message", StringComparison.OrdinalIgnoreCase))
            {
                message = Text(property.Value);
            }
            else if (name.Equals("labels", StringComparison.OrdinalIgnoreCase) && property.Value.ValueKind == JsonValueKind.Object)
            {
                labels = new Dictionary<string, string>(StringComparer.Ordinal);
                foreach (var label in property.Value.EnumerateObject())
                {
                    labels[label.Name] = Text(label.Value);
                }
            }
        }

        return new LogEntry
        {
            RunId = string.IsNullOrEmpty(runId) ? runIdSnake ?? "" : runId,
            Driver = driver,
            Pipeline = pipeline,
            Timestamp = timestamp,
            Message = message,
            Labels = labels is { Count: > 0 } ? labels : null,
        };
    }

    private static string Text(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => value.GetString() ?? "",
        JsonValueKind.Null or JsonValueKind.Undefined => "",
        _ => value.GetRawText(),
    };
}
