using System.Text.Json;
using System.Text.RegularExpressions;
using Conveyor.Grains.Abstractions;

namespace Conveyor.Grains.Resources;

/// <summary>
/// Structural checks of a JSON Schema that the schema library leaves out: keyword value types, valid regular
/// expressions, and local references only (a definition must never make the server read a file or fetch a URL).
/// </summary>
internal static class SchemaLint
{
    private static readonly HashSet<string> TypeNames = ["null", "boolean", "object", "array", "number", "integer", "string"];
    private static readonly string[] SchemaMapKeywords = ["properties", "patternProperties", "$defs", "definitions", "dependentSchemas"];
    private static readonly string[] SchemaKeywords = ["items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames", "additionalItems", "unevaluatedItems", "unevaluatedProperties"];
    private static readonly string[] SchemaArrayKeywords = ["allOf", "anyOf", "oneOf", "prefixItems"];
    private static readonly string[] NumberKeywords = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"];
    private static readonly string[] CountKeywords = ["minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties", "minContains", "maxContains"];

    /// <summary>Throws <see cref="ConveyorValidationException"/> naming the first structural error.</summary>
    public static void Check(string schemaJson)
    {
        JsonElement root;
        try
        {
            root = JsonSerializer.Deserialize<JsonElement>(schemaJson);
        }
        catch (JsonException ex)
        {
            throw Fail("schema", $"is not JSON: {ex.Message}");
        }

        Walk(root, "schema", 0);
    }

    private static void Walk(JsonElement schema, string path, int depth)
    {
        if (depth > 64)
        {
            throw Fail(path, "nests too deeply");
        }

        if (schema.ValueKind is JsonValueKind.True or JsonValueKind.False)
        {
            return;
        }

        if (schema.ValueKind != JsonValueKind.Object)
        {
            throw Fail(path, "must be an object or a boolean");
        }

        foreach (var property in schema.EnumerateObject())
        {
            var at = $"{path}.{property.Name}";
            var value = property.Value;
            switch (property.Name)
            {
                case "type":
                    CheckType(value, at);
                    break;
                case "$ref" or "$dynamicRef":
                    if (value.ValueKind != JsonValueKind.String)
                    {
                        throw Fail(at, "must be a string");
                    }

                    if (!value.GetString()!.StartsWith('#'))
                    {
                        throw Fail(at, $"external reference '{value.GetString()}' is not allowed; use a local reference into $defs");
                    }

                    break;
                case "required":
                    if (value.ValueKind != JsonValueKind.Array || value.EnumerateArray().Any(e => e.ValueKind != JsonValueKind.String))
                    {
                        throw Fail(at, "must be an array of property names");
                    }

                    break;
                case "enum":
                    if (value.ValueKind != JsonValueKind.Array)
                    {
                        throw Fail(at, "must be an array");
                    }

                    break;
                case "pattern":
                    CheckPattern(value, at);
                    break;
                case var k when SchemaMapKeywords.Contains(k):
                    if (value.ValueKind != JsonValueKind.Object)
                    {
                        throw Fail(at, "must be an object of schemas");
                    }

                    foreach (var child in value.EnumerateObject())
                    {
                        if (k == "patternProperties")
                        {
                            CheckPattern(JsonSerializer.SerializeToElement(child.Name), $"{at}.{child.Name}");
                        }

                        Walk(child.Value, $"{at}.{child.Name}", depth + 1);
                    }

                    break;
                case var k when SchemaKeywords.Contains(k):
                    if (k == "items" && value.ValueKind == JsonValueKind.Array)
                    {
                        WalkArray(value, at, depth);
                    }
                    else
                    {
                        Walk(value, at, depth + 1);
                    }

                    break;
                case var k when SchemaArrayKeywords.Contains(k):
                    if (value.ValueKind != JsonValueKind.Array || value.GetArrayLength() == 0)
                    {
                        throw Fail(at, "must be a non-empty array of schemas");
                    }

                    WalkArray(value, at, depth);
                    break;
                case var k when NumberKeywords.Contains(k):
                    if (value.ValueKind != JsonValueKind.Number && !(k.StartsWith("exclusive", StringComparison.Ordinal) && value.ValueKind is JsonValueKind.True or JsonValueKind.False))
                    {
                        throw Fail(at, "must be a number");
                    }

                    break;
                case var k when CountKeywords.Contains(k):
                    if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt64(out var n) || n < 0)
                    {
                        throw Fail(at, "must be a non-negative integer");
                    }

                    break;
            }
        }
    }

    private static void WalkArray(JsonElement array, string path, int depth)
    {
        var i = 0;
        foreach (var item in array.EnumerateArray())
        {
            Walk(item, $"{path}[{i++}]", depth + 1);
        }
    }

    private static void CheckType(JsonElement value, string path)
    {
        var names = value.ValueKind switch
        {
            JsonValueKind.String => [value.GetString()!],
            JsonValueKind.Array when value.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String) =>
                value.EnumerateArray().Select(e => e.GetString()!).ToArray(),
            _ => throw Fail(path, "must be a type name or an array of type names"),
        };
        foreach (var name in names)
        {
            if (!TypeNames.Contains(name))
            {
                throw Fail(path, $"'{name}' is not a JSON Schema type (null, boolean, object, array, number, integer, string)");
            }
        }
    }

    private static void CheckPattern(JsonElement value, string path)
    {
        if (value.ValueKind != JsonValueKind.String)
        {
            throw Fail(path, "must be a regular expression string");
        }

        try
        {
            _ = new Regex(value.GetString()!, RegexOptions.None, TimeSpan.FromMilliseconds(100));
        }
        catch (ArgumentException ex)
        {
            throw Fail(path, $"is not a valid regular expression: {ex.Message}");
        }
    }

    private static ConveyorValidationException Fail(string path, string message) =>
        new(path, $"'schema' is not a usable JSON Schema: {path} {message}");
}
