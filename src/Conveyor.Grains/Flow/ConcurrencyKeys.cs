using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Conveyor.Grains.Abstractions;

namespace Conveyor.Grains.Flow;

/// <summary>
/// The small path syntax of a concurrency group key: <c>name</c>, <c>type</c>, <c>metadata.&lt;key&gt;</c>,
/// <c>spec</c> or <c>spec.&lt;member&gt;[.&lt;member&gt;…]</c>, where a numeric member indexes an array.
/// </summary>
internal static partial class ConcurrencyKeys
{
    /// <summary>Whether <paramref name="expression"/> is a valid key path.</summary>
    public static bool IsValid(string? expression) => expression is { Length: > 0 and <= 256 } && PathRegex().IsMatch(expression);

    /// <summary>
    /// The group of a run: the value at <paramref name="expression"/> in <paramref name="resource"/> — a string as is,
    /// anything else as its JSON text; a missing value is the empty string (such runs share one group).
    /// </summary>
    public static string Evaluate(string expression, ResourceData resource)
    {
        ArgumentNullException.ThrowIfNull(expression);
        ArgumentNullException.ThrowIfNull(resource);
        switch (expression)
        {
            case "name":
                return resource.Name;
            case "type":
                return resource.Type;
        }

        if (expression.StartsWith("metadata.", StringComparison.Ordinal))
        {
            return resource.Metadata.GetValueOrDefault(expression["metadata.".Length..]) ?? "";
        }

        using var doc = JsonDocument.Parse(resource.Spec);
        var current = doc.RootElement;
        foreach (var member in expression.Split('.').Skip(1))
        {
            if (current.ValueKind == JsonValueKind.Object && current.TryGetProperty(member, out var next))
            {
                current = next;
            }
            else if (current.ValueKind == JsonValueKind.Array
                && int.TryParse(member, NumberStyles.None, CultureInfo.InvariantCulture, out var i)
                && i < current.GetArrayLength())
            {
                current = current[i];
            }
            else
            {
                return "";
            }
        }

        return current.ValueKind switch
        {
            JsonValueKind.String => current.GetString()!,
            JsonValueKind.Null or JsonValueKind.Undefined => "",
            _ => current.GetRawText(),
        };
    }

    [GeneratedRegex(@"^(name|type|metadata\.[^.\s]+|spec(\.[^.\s]+)*)$", RegexOptions.CultureInvariant)]
    private static partial Regex PathRegex();
}
