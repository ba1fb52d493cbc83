using System.Text.RegularExpressions;

namespace Conveyor.Grains.Abstractions;

/// <summary>Name rules and grain keys. Every key starts with the namespace, so tenants can never share an object.</summary>
public static partial class Names
{
    /// <summary>The namespace used by the original (un-namespaced) routes.</summary>
    public const string DefaultNamespace = "default";

    /// <summary>Longest accepted name (a DNS label).</summary>
    public const int MaxLength = 63;

    /// <summary>
    /// Whether <paramref name="value"/> is a DNS-label-like name: 1–63 lowercase letters, digits and hyphens, starting
    /// and ending with a letter or digit. Such names are safe in NATS subjects, grain keys and URLs.
    /// </summary>
    public static bool IsValid(string? value) => value is { Length: > 0 and <= MaxLength } && NameRegex().IsMatch(value);

    /// <summary>Throws a <see cref="ConveyorValidationException"/> naming <paramref name="field"/> when the name is invalid.</summary>
    public static void Validate(string? value, string field)
    {
        if (string.IsNullOrEmpty(value))
        {
            throw new ConveyorValidationException(field, $"'{field}' is required.");
        }

        if (!IsValid(value))
        {
            throw new ConveyorValidationException(
                field,
                $"'{field}' must be 1-{MaxLength} lowercase letters, digits or '-', starting and ending with a letter or digit (got '{Truncate(value)}').");
        }
    }

    /// <summary>Grain key of a resource definition.</summary>
    public static string DefinitionKey(string ns, string name) => $"{ns}/{name}";

    /// <summary>Grain key of a pipeline.</summary>
    public static string PipelineKey(string ns, string name) => $"{ns}/{name}";

    /// <summary>Grain key of a resource.</summary>
    public static string ResourceKey(string ns, string type, string name) => $"{ns}/{type}/{name}";

    /// <summary>Splits a grain key made by one of the <c>…Key</c> methods.</summary>
    public static string[] SplitKey(string key) => key.Split('/');

    /// <summary>Shortens a value for an error message.</summary>
    public static string Truncate(string value) => value.Length <= 80 ? value : value[..80] + "…";

    [GeneratedRegex("^[a-z0-9]([a-z0-9-]*[a-z0-9])?$", RegexOptions.CultureInvariant)]
    private static partial Regex NameRegex();
}
