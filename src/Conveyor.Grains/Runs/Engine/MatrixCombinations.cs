using System.Text;
using System.Text.Json;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Pipelines;

namespace Conveyor.Grains.Runs.Engine;

/// <summary>The combinations of a matrix step: each the raw JSON its instance's driver gets as <c>params.matrix</c>.</summary>
internal static class MatrixCombinations
{
    /// <summary>
    /// The combinations, in order: the cartesian product of the axes (the last axis varying fastest) as objects, or
    /// the elements of the dependency's list that <c>fromInput</c> names. An error when the list is missing, not a
    /// list, or longer than <see cref="PipelineValidator.MaxMatrixInstances"/>.
    /// </summary>
    public static (List<string>? Combinations, string? Error) Of(StepSpec spec, RunGraph graph)
    {
        var matrix = spec.Matrix!;
        return matrix.FromInput is { } from ? FromInput(from, graph) : (Product(matrix.Axes), null);
    }

    private static List<string> Product(List<MatrixAxis> axes)
    {
        var combinations = new List<string> { "" };
        foreach (var axis in axes)
        {
            var next = new List<string>(combinations.Count * axis.Values.Count);
            foreach (var prefix in combinations)
            {
                foreach (var value in axis.Values)
                {
                    next.Add(prefix + (prefix.Length == 0 ? "" : ",") + JsonSerializer.Serialize(axis.Name) + ":" + value);
                }
            }

            combinations = next;
        }

        return combinations.ConvertAll(c => "{" + c + "}");
    }

    private static (List<string>? Combinations, string? Error) FromInput(string from, RunGraph graph)
    {
        var path = from.Split('.');
        var source = graph.FindStep(path[0]);
        if (source?.Output is not { } output)
        {
            return (null, $"matrix fromInput {from}: step {path[0]} has no output");
        }

        using var document = JsonDocument.Parse(output);
        var element = document.RootElement;
        var walked = new StringBuilder(path[0]);
        foreach (var field in path.AsSpan(1))
        {
            walked.Append('.').Append(field);
            if (element.ValueKind != JsonValueKind.Object || !element.TryGetProperty(field, out element))
            {
                return (null, $"matrix fromInput {from}: the output has no {walked}");
            }
        }

        if (element.ValueKind != JsonValueKind.Array)
        {
            return (null, $"matrix fromInput {from}: {element.ValueKind.ToString().ToLowerInvariant()}, not a list");
        }

        if (element.GetArrayLength() > PipelineValidator.MaxMatrixInstances)
        {
            return (null, $"matrix fromInput {from}: {element.GetArrayLength()} elements, more than {PipelineValidator.MaxMatrixInstances}");
        }

        var combinations = new List<string>(element.GetArrayLength());
        foreach (var item in element.EnumerateArray())
        {
            combinations.Add(item.GetRawText());
        }

        return (combinations, null);
    }
}
