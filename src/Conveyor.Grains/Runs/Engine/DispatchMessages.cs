using System.Text.Json;
using System.Text.Json.Nodes;
using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Resources;

namespace Conveyor.Grains.Runs.Engine;

/// <summary>What a step's driver receives, built from the run: the original's message plus the DAG's fields.</summary>
internal static class DispatchMessages
{
    /// <summary>
    /// The message of one attempt. Root steps get <c>create</c> like the original's first step, every later step
    /// (and every finally step) <c>process</c>; <c>inputs</c> holds the data of each succeeded direct dependency,
    /// <c>params</c> the step's params with the run's laid over them, and for a matrix instance its combination as
    /// <c>params.matrix</c>.
    /// </summary>
    /// <param name="graph">The run's DAG.</param>
    /// <param name="step">The step.</param>
    /// <param name="attempt">The attempt number.</param>
    /// <param name="payload">The resource snapshot as the original sends it (<see cref="Payload"/>), shared by a batch.</param>
    /// <param name="stepToken">The attempt's capability to fetch its secrets, or null.</param>
    public static DriverMessage Build(RunGraph graph, StepState step, int attempt, string payload, string? stepToken)
    {
        var run = graph.Run;
        var spec = graph.Spec(step);
        Dictionary<string, JsonElement>? inputs = null;
        foreach (var dep in spec.DependsOn)
        {
            if (graph.Step(dep).Output is { } output)
            {
                (inputs ??= new(StringComparer.Ordinal))[dep] = JsonSerializer.Deserialize<JsonElement>(output);
            }
        }

        var runId = run.RunId.ToString();
        return new DriverMessage
        {
            Event = spec.DependsOn.Count == 0 && !spec.Finally ? EventNames.Create : EventNames.Process,
            Payload = payload,
            Id = MessageIds.ForDispatch(runId, step.Id, attempt),
            RunId = runId,
            Step = step.Id,
            Attempt = attempt,
            StepToken = stepToken,
            Params = step.Matrix is { } matrix ? WithMatrix(MergeParams(spec.Params, run.Plan.Params), matrix) : MergeParams(spec.Params, run.Plan.Params),
            Inputs = inputs,
            Variables = run.Plan.Pipeline.Variables,
        };
    }

    /// <summary>The resource snapshot with the <c>driverresults.&lt;driver&gt;</c> entries so far, as the original's JSON string.</summary>
    public static string Payload(RunPlan plan, IReadOnlyDictionary<string, string> driverResults) =>
        ConveyorJson.SerializeResource(ResourceGrain.ToWire(plan.Resource, driverResults));

    /// <summary>A step's params with the run's params laid over them, key by key (the run's win).</summary>
    public static JsonElement? MergeParams(string? stepParams, string? runParams)
    {
        if (runParams is null)
        {
            return stepParams is null ? null : JsonSerializer.Deserialize<JsonElement>(stepParams);
        }

        var merged = stepParams is not null && JsonNode.Parse(stepParams) is JsonObject o ? o : new JsonObject();
        if (JsonNode.Parse(runParams) is JsonObject overrides)
        {
            foreach (var (key, value) in overrides)
            {
                merged[key] = value?.DeepClone();
            }
        }

        return JsonSerializer.Deserialize<JsonElement>(merged.ToJsonString());
    }

    /// <summary>Params with <c>matrix</c> set to an instance's combination (over any <c>matrix</c> key the params had).</summary>
    public static JsonElement WithMatrix(JsonElement? parameters, string matrix)
    {
        var merged = parameters is { ValueKind: JsonValueKind.Object } p && JsonNode.Parse(p.GetRawText()) is JsonObject o ? o : new JsonObject();
        merged["matrix"] = JsonNode.Parse(matrix);
        return JsonSerializer.Deserialize<JsonElement>(merged.ToJsonString());
    }

    /// <summary>A driver's result as the original's <c>DriverResultEvent</c> JSON: the value of <c>driverresults.&lt;driver&gt;</c>.</summary>
    public static string ResultJson(bool success, string message, string? data, string driver) =>
        JsonSerializer.Serialize(
            new DriverResultEvent
            {
                Success = success,
                Message = message,
                Data = data is null ? null : JsonSerializer.Deserialize<JsonElement>(data),
                Driver = driver,
            },
            ConveyorJson.Context.DriverResultEvent);
}
