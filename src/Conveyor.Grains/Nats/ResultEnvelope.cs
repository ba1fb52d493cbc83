using System.Text.Json.Serialization;
using Conveyor.Contracts;

namespace Conveyor.Grains.Nats;

/// <summary>
/// What the engine reads of a <see cref="PipelineEvent"/> on <c>pipelines.&gt;</c>. The <c>resource</c> a driver sends
/// back is not used by the engine (the run holds its own snapshot), so it is skipped unread: parsing it (metadata
/// dictionary, spec document) on every result was a third of the consumer's JSON allocation. Names and matching are
/// those of <see cref="ConveyorJson.Options"/>.
/// </summary>
internal sealed record ResultEnvelope
{
    /// <summary><c>create</c> (pipeline start) or <c>driver.result</c>.</summary>
    [JsonPropertyName("event")]
    public string Event { get; init; } = "";

    /// <summary>Run id the event belongs to.</summary>
    [JsonPropertyName("run_id")]
    public string RunId { get; init; } = "";

    /// <summary>The driver's result.</summary>
    [JsonPropertyName("driverresult")]
    public DriverResultEvent DriverResult { get; init; } = new();
}

/// <summary>Source-generated metadata for <see cref="ResultEnvelope"/>, with the wire settings of <see cref="ConveyorJson"/>.</summary>
[JsonSourceGenerationOptions(PropertyNameCaseInsensitive = true, MaxDepth = 64)]
[JsonSerializable(typeof(ResultEnvelope))]
internal sealed partial class ResultEnvelopeJsonContext : JsonSerializerContext;
