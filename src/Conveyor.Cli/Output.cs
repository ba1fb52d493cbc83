using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Conveyor.Cli;

/// <summary>How a command prints what it read.</summary>
internal enum OutputFormat
{
    /// <summary>A table of the most useful columns (the default).</summary>
    Table = 0,

    /// <summary>The table with more columns.</summary>
    Wide = 1,

    /// <summary>The API's JSON; a listing is <c>{"items": [...], "nextCursor": ...}</c>.</summary>
    Json = 2,

    /// <summary>The same as YAML.</summary>
    Yaml = 3,

    /// <summary><c>kind/name</c> per line, for scripts.</summary>
    Name = 4,
}

/// <summary>One column of a table: its heading and how to read a cell from an object's JSON.</summary>
internal sealed record Column(string Heading, Func<JsonElement, string> Cell);

/// <summary>Printing objects and listings in every <see cref="OutputFormat"/>.</summary>
internal static class Output
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>The <c>-o</c> option.</summary>
    public static Option<string?> Option(params string[] formats)
    {
        var option = new Option<string?>("--output", "-o") { Description = $"Output format: {string.Join(", ", formats)}" };
        option.AcceptOnlyFromAmong(formats);
        return option;
    }

    /// <summary>Reads <c>-o</c>; <paramref name="fallback"/> when absent.</summary>
    public static OutputFormat Parse(string? text, OutputFormat fallback = OutputFormat.Table) => text switch
    {
        null => fallback,
        "wide" => OutputFormat.Wide,
        "json" => OutputFormat.Json,
        "yaml" => OutputFormat.Yaml,
        "name" => OutputFormat.Name,
        _ => OutputFormat.Table,
    };

    /// <summary>Pretty JSON.</summary>
    public static string Json(JsonElement value) => JsonSerializer.Serialize(value, Indented) + Environment.NewLine;

    /// <summary>JSON or YAML of one value.</summary>
    public static string Document(JsonElement value, OutputFormat format) => format == OutputFormat.Yaml ? Yaml.Write(value) : Json(value);

    /// <summary>A listing as the API pages it: <c>{"items": [...], "nextCursor": ...}</c>.</summary>
    public static JsonElement Page(IEnumerable<JsonElement> items, string? nextCursor)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream))
        {
            writer.WriteStartObject();
            writer.WritePropertyName("items");
            writer.WriteStartArray();
            foreach (var item in items)
            {
                item.WriteTo(writer);
            }

            writer.WriteEndArray();
            if (nextCursor is null)
            {
                writer.WriteNull("nextCursor");
            }
            else
            {
                writer.WriteString("nextCursor", nextCursor);
            }

            writer.WriteEndObject();
        }

        return JsonDocument.Parse(stream.ToArray()).RootElement.Clone();
    }

    /// <summary>A table: headings, then one row per item; columns padded to their widest cell.</summary>
    public static string Table(IReadOnlyList<Column> columns, IEnumerable<JsonElement> items)
    {
        var rows = new List<string[]> { columns.Select(c => c.Heading).ToArray() };
        rows.AddRange(items.Select(item => columns.Select(c => OneLine(c.Cell(item))).ToArray()));
        var widths = Enumerable.Range(0, columns.Count).Select(i => rows.Max(r => r[i].Length)).ToArray();
        var sb = new StringBuilder();
        foreach (var row in rows)
        {
            for (var i = 0; i < row.Length - 1; i++)
            {
                sb.Append(row[i].PadRight(widths[i])).Append("   ");
            }

            sb.Append(row[^1]).Append('\n');
        }

        return string.Join('\n', sb.ToString().Split('\n').Select(l => l.TrimEnd()));
    }

    /// <summary>A string member, or empty.</summary>
    public static string Str(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) ? v.ValueKind switch
        {
            JsonValueKind.String => v.GetString() ?? "",
            JsonValueKind.Null or JsonValueKind.Undefined => "",
            JsonValueKind.Array => string.Join(",", v.EnumerateArray().Select(x => x.ValueKind == JsonValueKind.String ? x.GetString() : x.GetRawText())),
            _ => v.GetRawText(),
        } : "";

    /// <summary>A member that is an array: how many items, or empty.</summary>
    public static string Count(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Array
            ? v.GetArrayLength().ToString(CultureInfo.InvariantCulture) : "";

    /// <summary>A timestamp member as <c>yyyy-MM-dd HH:mm:ss</c> UTC, or empty.</summary>
    public static string Time(JsonElement e, string name) =>
        DateTimeOffset.TryParse(Str(e, name), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t)
            ? t.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) : "";

    /// <summary>A member of a nested object (<c>metadata.version</c>), or empty.</summary>
    public static string Member(JsonElement e, string obj, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(obj, out var o) ? Str(o, name) : "";

    /// <summary>One line of at most 80 characters.</summary>
    public static string OneLine(string text)
    {
        var line = text.ReplaceLineEndings(" ");
        return line.Length > 80 ? line[..77] + "..." : line;
    }
}
