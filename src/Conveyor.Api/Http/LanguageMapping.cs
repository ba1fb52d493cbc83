using System.Text.Json;
using Conveyor.Client;
using Conveyor.Grains.Abstractions;

namespace Conveyor.Api.Http;

/// <summary>The pipeline language's fields between the wire and the engine's model.</summary>
internal static class LanguageMapping
{
    /// <summary>A step kind as the wire names it.</summary>
    public static string Kind(StepKind kind) => kind switch
    {
        StepKind.Approval => "approval",
        StepKind.Pipeline => "pipeline",
        _ => "driver",
    };

    /// <summary>A skip reason as the wire names it.</summary>
    public static string? Skip(SkipReason reason) => reason switch
    {
        SkipReason.Condition => "condition",
        SkipReason.Dependency => "dependency",
        SkipReason.RunEnded => "run-ended",
        _ => null,
    };

    /// <summary>Fills the language fields of <paramref name="spec"/> from the wire, naming each field it rejects.</summary>
    public static void ToSpec(PipelineStep dto, StepSpec spec, string prefix, Dictionary<string, string[]> errors)
    {
        spec.When = dto.When;
        spec.Approvers = dto.Approvers;
        spec.Pipeline = dto.Pipeline;
        switch (dto.Type)
        {
            case null or "" when dto.Pipeline is not null:
            case "pipeline":
                spec.Kind = StepKind.Pipeline;
                break;
            case null or "" or "driver":
                spec.Kind = StepKind.Driver;
                break;
            case "approval":
                spec.Kind = StepKind.Approval;
                break;
            default:
                errors[prefix + ".type"] = [$"must be 'driver', 'approval' or 'pipeline' (got '{Names.Truncate(dto.Type)}')"];
                break;
        }

        if (dto.Matrix is { } matrix)
        {
            spec.Matrix = Matrix(matrix, prefix + ".matrix", errors);
        }
    }

    private static MatrixSpec Matrix(StepMatrix dto, string field, Dictionary<string, string[]> errors)
    {
        var spec = new MatrixSpec { MaxParallel = dto.MaxParallel, FromInput = dto.FromInput };
        if (dto.Axes is not { ValueKind: not JsonValueKind.Null and not JsonValueKind.Undefined } axes)
        {
            return spec;
        }

        if (axes.ValueKind != JsonValueKind.Object)
        {
            errors[field + ".axes"] = ["must be an object of lists, e.g. {\"os\": [\"linux\", \"windows\"]}"];
            return spec;
        }

        // Declaration order is kept: it orders the combinations.
        foreach (var axis in axes.EnumerateObject())
        {
            if (axis.Value.ValueKind != JsonValueKind.Array)
            {
                errors[$"{field}.axes.{Names.Truncate(axis.Name)}"] = ["must be a list of values"];
                continue;
            }

            spec.Axes.Add(new MatrixAxis { Name = axis.Name, Values = axis.Value.EnumerateArray().Select(v => v.GetRawText()).ToList() });
        }

        return spec;
    }

    /// <summary>Copies the language fields of <paramref name="spec"/> to the wire (each only where set).</summary>
    public static PipelineStep ToDto(PipelineStep dto, StepSpec spec) => dto with
    {
        Type = spec.Kind == StepKind.Driver ? null : Kind(spec.Kind),
        When = spec.When,
        Approvers = spec.Approvers,
        Pipeline = spec.Pipeline,
        Matrix = spec.Matrix is { } m
            ? new StepMatrix
            {
                MaxParallel = m.MaxParallel,
                FromInput = m.FromInput,
                Axes = m.FromInput is not null ? null
                    : JsonSerializer.Deserialize<JsonElement>("{" + string.Join(",", m.Axes.Select(a => $"{JsonSerializer.Serialize(a.Name)}:[{string.Join(",", a.Values)}]")) + "}"),
            }
            : null,
    };
}
