using System.Text.Json;
using System.Text.Json.Nodes;
using Conveyor.Grains.Abstractions;

namespace Conveyor.Grains.Catalog;

/// <summary>
/// Whether a write would store what is already stored: then it is a no-op (no new revision or version, no new
/// timestamp). The comparison errs towards "changed": anything it cannot prove equal is a change, as before.
/// </summary>
internal static class SameContent
{
    private static readonly JsonSerializerOptions Reflection = new(JsonSerializerDefaults.General);

    /// <summary>Same name, description, version and (JSON-equal) schema.</summary>
    public static bool Definition(ResourceDefinitionData stored, ResourceDefinitionData incoming) =>
        stored.Name == incoming.Name
        && stored.Description == incoming.Description
        && stored.Version == incoming.Version
        && Json(stored.Schema, incoming.Schema);

    /// <summary>
    /// Every member equal but the server's (revision, time of the write): compared as JSON, so a member added to
    /// <see cref="PipelineSpec"/> later takes part without anyone remembering to add it here, and raw JSON members
    /// (step params) compare by value, not by spelling.
    /// </summary>
    public static bool Pipeline(PipelineSpec stored, PipelineSpec incoming) =>
        JsonNode.DeepEquals(Comparable(stored), Comparable(incoming));

    /// <summary>
    /// Same pipeline and JSON-equal spec, and metadata (the server's <c>version</c> aside) equal to what is stored or
    /// to what a read shows (stored plus the latest run's <c>driverresults.*</c>), so a resource read and written
    /// back is unchanged.
    /// </summary>
    public static bool Resource(ResourceData stored, ResourceData incoming, IReadOnlyDictionary<string, string>? shownResults)
    {
        if (stored.Pipeline != incoming.Pipeline || !Json(stored.Spec, incoming.Spec))
        {
            return false;
        }

        var sent = WithoutVersion(incoming.Metadata);
        var kept = WithoutVersion(stored.Metadata);
        if (Equal(sent, kept))
        {
            return true;
        }

        if (shownResults is not { Count: > 0 })
        {
            return false;
        }

        foreach (var (key, value) in shownResults)
        {
            kept[key] = value;
        }

        return Equal(sent, kept);
    }

    /// <summary>Whether comparing with what a read shows could matter: the request carries driver results.</summary>
    public static bool MayCarryDriverResults(ResourceData incoming) =>
        incoming.Metadata.Keys.Any(k => k.StartsWith("driverresults.", StringComparison.Ordinal));

    private static JsonObject Comparable(PipelineSpec spec)
    {
        var node = JsonSerializer.SerializeToNode(spec, Reflection)!.AsObject();
        node.Remove(nameof(PipelineSpec.Revision));
        node.Remove(nameof(PipelineSpec.UpdatedAt));
        foreach (var step in node[nameof(PipelineSpec.Steps)]!.AsArray())
        {
            if (step?[nameof(StepSpec.Params)] is JsonValue raw && raw.TryGetValue<string>(out var text))
            {
                step[nameof(StepSpec.Params)] = JsonNode.Parse(text);
            }
        }

        return node;
    }

    private static bool Json(string? a, string? b)
    {
        if (a is null || b is null)
        {
            return a is null && b is null;
        }

        if (a == b)
        {
            return true;
        }

        using var x = JsonDocument.Parse(a);
        using var y = JsonDocument.Parse(b);
        return JsonElement.DeepEquals(x.RootElement, y.RootElement);
    }

    private static Dictionary<string, string> WithoutVersion(Dictionary<string, string> metadata)
    {
        var copy = new Dictionary<string, string>(metadata, StringComparer.Ordinal);
        copy.Remove("version");
        return copy;
    }

    private static bool Equal(Dictionary<string, string> a, Dictionary<string, string> b) =>
        a.Count == b.Count && a.All(p => b.TryGetValue(p.Key, out var v) && v == p.Value);
}
