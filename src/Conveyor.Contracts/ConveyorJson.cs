using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Conveyor.Contracts;

/// <summary>JSON settings and helpers shared by the engine and the driver SDK.</summary>
public static class ConveyorJson
{
    /// <summary>
    /// Options for wire messages. Property names are matched case-insensitively on read, like Go's
    /// <c>encoding/json</c> that the original engine and drivers use.
    /// </summary>
    public static JsonSerializerOptions Options { get; } = CreateOptions();

    /// <summary>Source-generated metadata for the wire types, bound to <see cref="Options"/>.</summary>
    public static WireJsonContext Context { get; } = new(CreateOptions());

    private static JsonSerializerOptions CreateOptions() => new(JsonSerializerDefaults.General)
    {
        PropertyNameCaseInsensitive = true,
        MaxDepth = 64,
        TypeInfoResolver = WireJsonContext.Default,
    };

    /// <summary>Serializes a resource the way the original puts it in <see cref="DriverMessage.Payload"/>.</summary>
    public static string SerializeResource(Resource resource) => JsonSerializer.Serialize(resource, Context.Resource);

    /// <summary>Parses a resource from a <see cref="DriverMessage.Payload"/> string.</summary>
    /// <exception cref="JsonException">The payload is not a resource object.</exception>
    public static Resource DeserializeResource(string payload) =>
        JsonSerializer.Deserialize(payload, Context.Resource) ?? throw new JsonException("payload is null");
}

/// <summary>Source-generated serializer metadata for the wire types.</summary>
[JsonSourceGenerationOptions(PropertyNameCaseInsensitive = true, MaxDepth = 64)]
[JsonSerializable(typeof(Resource))]
[JsonSerializable(typeof(DriverMessage))]
[JsonSerializable(typeof(DriverResultEvent))]
[JsonSerializable(typeof(PipelineEvent))]
[JsonSerializable(typeof(LogEntry))]
[JsonSerializable(typeof(CancelMessage))]
[JsonSerializable(typeof(HeartbeatMessage))]
public sealed partial class WireJsonContext : JsonSerializerContext;

/// <summary>Ids in the formats the original protocol uses.</summary>
public static class MessageIds
{
    /// <summary>A random message id: 24 lowercase hex characters (12 random bytes), as the original generates.</summary>
    public static string NewId() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));

    /// <summary>
    /// The message id of one dispatch of a step: the same 24-hex format, derived from <c>{run}:{step}:{attempt}</c>
    /// so that a dispatch re-published after a crash carries the same id.
    /// </summary>
    public static string ForDispatch(string runId, string stepId, int attempt) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(DedupKey(runId, stepId, attempt))).AsSpan(0, 12));

    /// <summary>The JetStream de-duplication key (<c>Nats-Msg-Id</c>) of one dispatch.</summary>
    public static string DedupKey(string runId, string stepId, int attempt) => $"{runId}:{stepId}:{attempt}";
}
