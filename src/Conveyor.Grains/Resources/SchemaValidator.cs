using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Conveyor.Grains.Abstractions;
using NJsonSchema;
using NJsonSchema.References;
using NJsonSchema.Validation;

namespace Conveyor.Grains.Resources;

/// <summary>
/// Compiles resource-definition schemas and validates specs against them. Compiled schemas are cached by content
/// hash, so a definition's schema is parsed once per silo, not once per resource.
/// </summary>
internal static class SchemaValidator
{
    private const int MaxCachedSchemas = 1024;
    private static readonly ConcurrentDictionary<string, JsonSchema> Cache = new(StringComparer.Ordinal);

    /// <summary>Compiles <paramref name="schemaJson"/>; throws <see cref="ConveyorValidationException"/> when it is not a usable JSON Schema.</summary>
    public static async Task<JsonSchema> CompileAsync(string schemaJson)
    {
        ArgumentNullException.ThrowIfNull(schemaJson);
        var key = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(schemaJson)));
        if (Cache.TryGetValue(key, out var cached))
        {
            return cached;
        }

        SchemaLint.Check(schemaJson);
        JsonSchema schema;
        try
        {
            schema = await JsonSchema.FromJsonAsync(schemaJson, documentPath: null, s => new OfflineReferenceResolver(s)).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            throw new ConveyorValidationException("schema", $"'schema' is not a usable JSON Schema: {ex.Message}");
        }

        if (Cache.Count >= MaxCachedSchemas)
        {
            Cache.Clear();
        }

        Cache[key] = schema;
        return schema;
    }

    /// <summary>Validates a spec; returns the errors keyed by path under <c>spec</c> (empty when valid).</summary>
    public static Dictionary<string, string[]> Validate(JsonSchema schema, string specJson)
    {
        ArgumentNullException.ThrowIfNull(schema);
        var errors = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var error in schema.Validate(specJson))
        {
            Collect(error, errors);
        }

        return errors.ToDictionary(e => e.Key, e => e.Value.ToArray(), StringComparer.Ordinal);
    }

    private static void Collect(ValidationError error, Dictionary<string, List<string>> errors)
    {
        if (error is ChildSchemaValidationError child)
        {
            foreach (var nested in child.Errors.SelectMany(e => e.Value))
            {
                Collect(nested, errors);
            }
        }

        var path = ToFieldPath(error.Path);
        var text = error.Kind switch
        {
            ValidationErrorKind.PropertyRequired => $"property '{error.Property}' is required",
            ValidationErrorKind.NoAdditionalPropertiesAllowed => $"property '{error.Property}' is not allowed",
            _ => SplitWords(error.Kind.ToString()),
        };
        if (!errors.TryGetValue(path, out var list))
        {
            errors[path] = list = [];
        }

        if (!list.Contains(text))
        {
            list.Add(text);
        }
    }

    private static string ToFieldPath(string? pointer)
    {
        // NJsonSchema reports "#/a/b" or "#/a[0]"; the client sees "spec.a.b" / "spec.a[0]".
        var trimmed = (pointer ?? "#").TrimStart('#').Trim('/');
        return trimmed.Length == 0 ? "spec" : "spec." + trimmed.Replace('/', '.');
    }

    private static string SplitWords(string kind)
    {
        var sb = new StringBuilder(kind.Length + 8);
        foreach (var c in kind)
        {
            if (char.IsUpper(c) && sb.Length > 0)
            {
                sb.Append(' ');
            }

            sb.Append(char.ToLowerInvariant(c));
        }

        return sb.ToString();
    }

    /// <summary>Refuses external references: a definition must not make the server read files or fetch URLs.</summary>
    private sealed class OfflineReferenceResolver(JsonSchema schema)
        : JsonReferenceResolver(new JsonSchemaAppender(schema, new DefaultTypeNameGenerator()))
    {
        public override Task<IJsonReference> ResolveFileReferenceAsync(string filePath, CancellationToken cancellationToken = default) =>
            throw new NotSupportedException($"external reference '{filePath}' is not allowed; use local $defs");

        public override Task<IJsonReference> ResolveUrlReferenceAsync(string url, CancellationToken cancellationToken = default) =>
            throw new NotSupportedException($"external reference '{url}' is not allowed; use local $defs");
    }
}
