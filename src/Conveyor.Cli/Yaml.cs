using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Conveyor.Cli;

/// <summary>
/// YAML as the CLI reads and writes it: documents become JSON (plain scalars that read as numbers, booleans or null
/// become those; quoted ones stay strings), and JSON is written back as block YAML that reads back to the same JSON.
/// </summary>
internal static partial class Yaml
{
    /// <summary>Every non-empty document of <paramref name="text"/>, as JSON.</summary>
    /// <exception cref="YamlException">The text is not YAML.</exception>
    public static List<JsonNode?> Parse(string text)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(text));
        return stream.Documents.Where(d => d.RootNode is not YamlScalarNode { Value: null or "" }).Select(d => ToJson(d.RootNode)).ToList();
    }

    /// <summary>Block YAML for a JSON value; members keep their order.</summary>
    public static string Write(JsonElement value)
    {
        var sb = new StringBuilder();
        WriteValue(sb, value, 0, inList: false);
        return sb.ToString();
    }

    /// <summary>Block YAML for a JSON node.</summary>
    public static string Write(JsonNode? value) =>
        Write(value is null ? JsonDocument.Parse("null").RootElement : JsonDocument.Parse(value.ToJsonString()).RootElement);

    private static void WriteValue(StringBuilder sb, JsonElement value, int indent, bool inList)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.Object when value.EnumerateObject().Any():
                var first = true;
                foreach (var member in value.EnumerateObject())
                {
                    // The first member of a list item continues the "- " line.
                    if (!(first && inList))
                    {
                        sb.Append(' ', indent);
                    }

                    first = false;
                    sb.Append(Key(member.Name)).Append(':');
                    WriteChild(sb, member.Value, indent);
                }

                break;
            case JsonValueKind.Array when value.GetArrayLength() > 0:
                first = true;
                foreach (var item in value.EnumerateArray())
                {
                    if (!(first && inList))
                    {
                        sb.Append(' ', indent);
                    }

                    first = false;
                    sb.Append("- ");
                    if (IsBlock(item))
                    {
                        WriteValue(sb, item, indent + 2, inList: true);
                    }
                    else
                    {
                        sb.Append(Scalar(item)).Append('\n');
                    }
                }

                break;
            default:
                sb.Append(Scalar(value)).Append('\n');
                break;
        }
    }

    private static void WriteChild(StringBuilder sb, JsonElement value, int indent)
    {
        if (IsBlock(value))
        {
            sb.Append('\n');
            // Lists under a key are not indented further, as kubectl writes them.
            WriteValue(sb, value, value.ValueKind == JsonValueKind.Array ? indent : indent + 2, inList: false);
        }
        else
        {
            sb.Append(' ').Append(Scalar(value)).Append('\n');
        }
    }

    private static bool IsBlock(JsonElement value) =>
        (value.ValueKind == JsonValueKind.Object && value.EnumerateObject().Any()) || (value.ValueKind == JsonValueKind.Array && value.GetArrayLength() > 0);

    private static string Scalar(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Object => "{}",
        JsonValueKind.Array => "[]",
        JsonValueKind.String => Text(value.GetString()!),
        JsonValueKind.Null or JsonValueKind.Undefined => "null",
        _ => value.GetRawText(),
    };

    private static string Key(string name) => PlainKey().IsMatch(name) ? name : JsonSerializer.Serialize(name);

    /// <summary>A string plain when it reads back as the same string, else double-quoted (a JSON string is valid YAML).</summary>
    private static string Text(string text)
    {
        if (text.Length == 0 || !PlainText().IsMatch(text) || text.EndsWith(' ') || text.EndsWith(':') || text.Contains(": ", StringComparison.Ordinal)
            || text.Contains(" #", StringComparison.Ordinal) || Reserved(text) || LooksNumeric(text))
        {
            return JsonSerializer.Serialize(text, QuoteOptions);
        }

        return text;
    }

    private static readonly JsonSerializerOptions QuoteOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static bool Reserved(string text) => text.ToLowerInvariant() is "true" or "false" or "null" or "~" or "yes" or "no" or "on" or "off" or "y" or "n";

    private static bool LooksNumeric(string text) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out _) || text.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
        || text.StartsWith("0o", StringComparison.OrdinalIgnoreCase) || text is ".inf" or "-.inf" or ".nan";

    [GeneratedRegex(@"^[A-Za-z0-9_$][A-Za-z0-9_.$/-]*$", RegexOptions.CultureInvariant)]
    private static partial Regex PlainKey();

    [GeneratedRegex(@"^[A-Za-z0-9_./(][A-Za-z0-9 _./@:+,()=<>^$%-]*$", RegexOptions.CultureInvariant)]
    private static partial Regex PlainText();

    private static JsonNode? ToJson(YamlNode node) => node switch
    {
        YamlMappingNode map => new JsonObject(map.Children.Select(kv => KeyValuePair.Create(((YamlScalarNode)kv.Key).Value ?? "", ToJson(kv.Value)))),
        YamlSequenceNode seq => new JsonArray([.. seq.Children.Select(ToJson)]),
        YamlScalarNode scalar => FromScalar(scalar),
        _ => throw new YamlException(node.Start, node.End, "unsupported YAML node (an alias or a tag)"),
    };

    private static JsonValue? FromScalar(YamlScalarNode scalar)
    {
        var value = scalar.Value ?? "";
        if (scalar.Style != ScalarStyle.Plain)
        {
            return JsonValue.Create(value);
        }

        switch (value)
        {
            case "" or "~" or "null" or "Null" or "NULL":
                return null;
            case "true" or "True" or "TRUE":
                return JsonValue.Create(true);
            case "false" or "False" or "FALSE":
                return JsonValue.Create(false);
        }

        if (long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var integer))
        {
            return JsonValue.Create(integer);
        }

        if (double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var number) && char.IsDigit(value[^1]))
        {
            return JsonValue.Create(number);
        }

        return JsonValue.Create(value);
    }
}
