using System.Text.Json;
using Json.Schema;

namespace Conveyor.IntegrationTests;

/// <summary>
/// Checks an event as Conveyor sends it: the CloudEvents 1.0 envelope, the CDEvent in its <c>data</c> against the
/// CDEvents 0.4.1 schema of its type (files in <c>CDEventSchemas/</c>, see the README there), and what the schemas
/// cannot express — the CDEvents CloudEvents binding, the spec version and the outcome vocabulary.
/// </summary>
public static class CDEventValidator
{
    /// <summary>The CDEvents specification version the product claims.</summary>
    public const string SpecVersion = "0.4.1";

    private static readonly string[] Outcomes = ["success", "failure", "error"];

    private static readonly Lazy<Schemas> Loaded = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    private static readonly EvaluationOptions Evaluation = new() { OutputFormat = OutputFormat.Hierarchical, RequireFormatValidation = true };

    /// <summary>Every violation found, as <c>where: what</c>; empty for a valid event.</summary>
    public static IReadOnlyList<string> Violations(string json)
    {
        var schemas = Loaded.Value;
        using var document = JsonDocument.Parse(json);
        var e = document.RootElement;
        var violations = new List<string>();
        Evaluate(schemas.Envelope, e, "cloudevent", violations);
        if (!e.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String)
        {
            violations.Add("type: missing");
            return violations;
        }

        if (!e.TryGetProperty("data", out var data))
        {
            violations.Add("data: missing");
            return violations;
        }

        if (!schemas.ByType.TryGetValue(type.GetString()!, out var schema))
        {
            violations.Add($"type: no CDEvents {SpecVersion} schema for '{type.GetString()}'");
            return violations;
        }

        Evaluate(schema, data, "data", violations);
        if (violations.Count > 0)
        {
            return violations;
        }

        // The CloudEvents binding: the envelope repeats the context, and its subject is the CDEvent subject's id.
        var context = data.GetProperty("context");
        foreach (var (attribute, member) in new[] { ("id", "id"), ("source", "source"), ("type", "type"), ("time", "timestamp") })
        {
            var envelope = e.TryGetProperty(attribute, out var a) ? a.GetString() : null;
            if (envelope != context.GetProperty(member).GetString())
            {
                violations.Add($"{attribute}: '{envelope}' is not the context's {member} '{context.GetProperty(member).GetString()}'");
            }
        }

        var subjectId = data.GetProperty("subject").GetProperty("id").GetString();
        if (!e.TryGetProperty("subject", out var subject) || subject.GetString() != subjectId)
        {
            violations.Add($"subject: must be the CDEvent subject's id '{subjectId}'");
        }

        if (e.TryGetProperty("datacontenttype", out var contentType) && contentType.GetString() != "application/json")
        {
            violations.Add($"datacontenttype: '{contentType.GetString()}' for JSON data");
        }

        if (context.GetProperty("version").GetString() != SpecVersion)
        {
            violations.Add($"data.context.version: '{context.GetProperty("version").GetString()}' is not {SpecVersion}");
        }

        if (data.GetProperty("subject").GetProperty("content").TryGetProperty("outcome", out var outcome) && !Outcomes.Contains(outcome.GetString()))
        {
            violations.Add($"data.subject.content.outcome: '{outcome.GetString()}' is none of {string.Join(", ", Outcomes)}");
        }

        return violations;
    }

    private static void Evaluate(JsonSchema schema, JsonElement instance, string prefix, List<string> violations)
    {
        var results = schema.Evaluate(instance, Evaluation);
        var before = violations.Count;
        Collect(results, prefix, violations);
        if (violations.Count == before && !results.IsValid)
        {
            violations.Add($"{prefix}: invalid");
        }
    }

    /// <summary>The errors of the failing branches only: a valid <c>oneOf</c> keeps quiet about the branch it did not take.</summary>
    private static void Collect(EvaluationResults results, string prefix, List<string> violations)
    {
        if (results.IsValid)
        {
            return;
        }

        foreach (var (keyword, message) in results.Errors ?? new Dictionary<string, string>())
        {
            violations.Add($"{prefix}{results.InstanceLocation}: {keyword}: {message}");
        }

        foreach (var detail in results.Details ?? [])
        {
            Collect(detail, prefix, violations);
        }
    }

    private static Schemas Load()
    {
        var dir = Path.Combine(AppContext.BaseDirectory, "CDEventSchemas");
        var build = new BuildOptions { SchemaRegistry = new SchemaRegistry() };

        // The links first: the event schemas refer to them by $id, relative to their own.
        foreach (var name in new[] { "embeddedlinkend", "embeddedlinkpath", "embeddedlinkrelation", "embeddedlinksarray" })
        {
            build.SchemaRegistry.Register(JsonSchema.FromFile(Path.Combine(dir, "links", name + ".json"), build));
        }

        var byType = new Dictionary<string, JsonSchema>(StringComparer.Ordinal);
        foreach (var file in Directory.GetFiles(dir, "*-event.json"))
        {
            var schema = JsonSchema.FromFile(file, build);
            build.SchemaRegistry.Register(schema);
            using var text = JsonDocument.Parse(File.ReadAllText(file));
            var type = text.RootElement.GetProperty("properties").GetProperty("context").GetProperty("properties").GetProperty("type").GetProperty("enum")[0].GetString()!;
            byType.Add(type, schema);
        }

        return new Schemas(JsonSchema.FromFile(Path.Combine(dir, "cloudevent.json"), build), byType);
    }

    private sealed record Schemas(JsonSchema Envelope, Dictionary<string, JsonSchema> ByType);
}
