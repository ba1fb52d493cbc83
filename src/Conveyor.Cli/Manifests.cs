using System.Text.Json;
using System.Text.Json.Nodes;
using YamlDotNet.Core;

namespace Conveyor.Cli;

/// <summary>What a document applies.</summary>
internal enum ManifestKind
{
    /// <summary>A resource definition (has <c>schema</c>).</summary>
    ResourceDefinition = 0,

    /// <summary>A pipeline (has <c>steps</c>).</summary>
    Pipeline = 1,

    /// <summary>A resource (has <c>spec</c>).</summary>
    Resource = 2,
}

/// <summary>One document of an input file, as the JSON the API takes.</summary>
/// <param name="Kind">What it is.</param>
/// <param name="Body">The document without its <c>kind</c> member.</param>
/// <param name="Origin">File and document number, for messages.</param>
internal sealed record Manifest(ManifestKind Kind, JsonObject Body, string Origin)
{
    /// <summary>The document's <c>name</c>.</summary>
    public string Name => Body["name"]?.GetValue<string>() ?? "";

    /// <summary>A resource's type (its <c>resource</c> member); empty for other kinds.</summary>
    public string ResourceType => Kind == ManifestKind.Resource && Body["resource"] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : "";

    /// <summary>How the CLI names it: <c>resource-definition/app</c>, <c>pipeline/ship</c>, <c>resource/app/web</c>.</summary>
    public string DisplayName => Kind switch
    {
        ManifestKind.ResourceDefinition => "resource-definition/" + Name,
        ManifestKind.Pipeline => "pipeline/" + Name,
        _ => $"resource/{ResourceType}/{Name}",
    };

    /// <summary>The route that reads (and deletes) what the document describes.</summary>
    public string LivePath => Kind switch
    {
        ManifestKind.ResourceDefinition => "resource-definitions/" + Uri.EscapeDataString(Name),
        ManifestKind.Pipeline => "pipelines/" + Uri.EscapeDataString(Name),
        _ => $"resources/{Uri.EscapeDataString(ResourceType)}/{Uri.EscapeDataString(Name)}",
    };
}

/// <summary>A file that cannot be applied; says which file, which document and why.</summary>
internal sealed class ManifestException(string message) : Exception(message)
{
    /// <summary>Creates the exception.</summary>
    public ManifestException()
        : this("invalid manifest")
    {
    }

    /// <summary>Creates the exception.</summary>
    public ManifestException(string message, Exception innerException)
        : this(message + ": " + innerException?.Message)
    {
    }
}

/// <summary>
/// Reads resource definitions, pipelines and resources from YAML (several documents per file, separated by
/// <c>---</c>) or JSON files (one object, or an array of objects). The kind is the document's <c>kind</c> member
/// (<c>ResourceDefinition</c>, <c>Pipeline</c>, <c>Resource</c>) or, without one, inferred: <c>schema</c> makes a
/// resource definition, <c>steps</c> a pipeline, <c>spec</c> a resource.
/// </summary>
internal static class Manifests
{
    /// <summary>
    /// Reads a file, every <c>.yaml</c>, <c>.yml</c> and <c>.json</c> file of a directory (in name order), or standard
    /// input for <c>-</c> (JSON when it starts with <c>{</c> or <c>[</c>, else YAML).
    /// </summary>
    /// <exception cref="ManifestException">A path is missing or a document is invalid.</exception>
    public static IReadOnlyList<Manifest> Load(string path, Func<TextReader> standardInput)
    {
        ArgumentNullException.ThrowIfNull(standardInput);
        if (path == "-")
        {
            var text = standardInput().ReadToEnd();
            var json = text.TrimStart().StartsWith('{') || text.TrimStart().StartsWith('[');
            return FromText("<stdin>", text, json);
        }

        if (Directory.Exists(path))
        {
            var files = Directory.EnumerateFiles(path)
                .Where(f => f.EndsWith(".yaml", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".yml", StringComparison.OrdinalIgnoreCase)
                    || f.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
                .Order(StringComparer.Ordinal)
                .ToList();
            if (files.Count == 0)
            {
                throw new ManifestException($"{path}: no .yaml, .yml or .json files in this directory");
            }

            return files.SelectMany(LoadFile).ToList();
        }

        if (!File.Exists(path))
        {
            throw new ManifestException($"{path}: no such file or directory");
        }

        return LoadFile(path);
    }

    /// <summary>Orders manifests so that what others need is applied first: definitions, then pipelines, then resources.</summary>
    public static IReadOnlyList<Manifest> InApplyOrder(IEnumerable<Manifest> manifests) => manifests.OrderBy(m => (int)m.Kind).ToList();

    private static List<Manifest> LoadFile(string file) =>
        FromText(file, File.ReadAllText(file), file.EndsWith(".json", StringComparison.OrdinalIgnoreCase));

    private static List<Manifest> FromText(string file, string text, bool json)
    {
        var nodes = json ? ParseJson(file, text) : ParseYaml(file, text);
        var manifests = new List<Manifest>();
        for (var i = 0; i < nodes.Count; i++)
        {
            var origin = nodes.Count == 1 ? file : $"{file} (document {i + 1})";
            manifests.Add(ToManifest(nodes[i], origin));
        }

        if (manifests.Count == 0)
        {
            throw new ManifestException($"{file}: the file holds no document");
        }

        return manifests;
    }

    private static List<JsonNode?> ParseJson(string file, string text)
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException ex)
        {
            throw new ManifestException($"{file}: not valid JSON: {ex.Message}");
        }

        return root is JsonArray array ? [.. array.Select(n => n?.DeepClone())] : [root];
    }

    private static List<JsonNode?> ParseYaml(string file, string text)
    {
        try
        {
            return Yaml.Parse(text);
        }
        catch (YamlException ex)
        {
            throw new ManifestException($"{file}: not valid YAML at line {ex.Start.Line}, column {ex.Start.Column}: {ex.InnerException?.Message ?? ex.Message}");
        }
    }

    private static Manifest ToManifest(JsonNode? node, string origin)
    {
        if (node is not JsonObject body)
        {
            throw new ManifestException($"{origin}: a document must be an object (a resource definition, pipeline or resource)");
        }

        ManifestKind kind;
        if (body["kind"] is { } kindNode)
        {
            var text = kindNode.GetValueKind() == JsonValueKind.String ? kindNode.GetValue<string>() : kindNode.ToJsonString();
            kind = text.ToLowerInvariant().Replace("-", "", StringComparison.Ordinal) switch
            {
                "resourcedefinition" or "definition" => ManifestKind.ResourceDefinition,
                "pipeline" => ManifestKind.Pipeline,
                "resource" => ManifestKind.Resource,
                _ => throw new ManifestException($"{origin}: unknown kind '{text}' (expected ResourceDefinition, Pipeline or Resource)"),
            };
            body.Remove("kind");
        }
        else if (body.ContainsKey("schema"))
        {
            kind = ManifestKind.ResourceDefinition;
        }
        else if (body.ContainsKey("steps"))
        {
            kind = ManifestKind.Pipeline;
        }
        else if (body.ContainsKey("spec"))
        {
            kind = ManifestKind.Resource;
        }
        else
        {
            throw new ManifestException($"{origin}: cannot tell what this is: add 'kind: ResourceDefinition|Pipeline|Resource' (or a schema, steps or spec)");
        }

        if (body["name"] is not JsonValue name || name.GetValueKind() != JsonValueKind.String || string.IsNullOrWhiteSpace(name.GetValue<string>()))
        {
            throw new ManifestException($"{origin}: 'name' is required");
        }

        if (kind == ManifestKind.Resource && body["resource"] is not JsonValue)
        {
            throw new ManifestException($"{origin}: a resource needs 'resource' (its type)");
        }

        return new Manifest(kind, body, origin);
    }
}
