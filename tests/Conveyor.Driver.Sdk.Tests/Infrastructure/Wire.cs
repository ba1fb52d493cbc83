using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Conveyor.Contracts;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Conveyor.Driver.Sdk.Tests.Infrastructure;

/// <summary>Builds and publishes messages exactly as the original engine writes them.</summary>
public static class Wire
{
    /// <summary>
    /// The original's DriverMessage JSON, with the resource JSON as a string in <c>payload</c> (contract §3.5).
    /// </summary>
    public static string DriverMessageJson(string runId, string resourceType, string name, string @event = "create", string? pipeline = null, string? messageId = null)
    {
        var pipelineMember = pipeline is null ? "" : $",\"pipeline\":\"{pipeline}\"";
        var resource = $"{{\"id\":\"{Guid.NewGuid()}\",\"name\":\"{name}\"{pipelineMember},\"resource\":\"{resourceType}\",\"metadata\":{{\"version\":\"1\"}},\"spec\":{{\"image\":\"alpine:3\",\"replicas\":2}}}}";
        return $"{{\"event\":\"{@event}\",\"payload\":{JsonSerializer.Serialize(resource)},\"id\":\"{messageId ?? MessageIds.NewId()}\",\"run_id\":\"{runId}\"}}";
    }

    /// <summary>
    /// Adds the engine's extension fields to a driver message: <c>step</c>, <c>attempt</c>, and <c>params</c> and
    /// <c>inputs</c> as raw JSON.
    /// </summary>
    public static string WithExtensions(string driverMessageJson, string? step = null, int? attempt = null, string? paramsJson = null, string? inputsJson = null)
    {
        var message = JsonNode.Parse(driverMessageJson)!.AsObject();
        if (step is not null)
        {
            message["step"] = step;
        }

        if (attempt is not null)
        {
            message["attempt"] = attempt;
        }

        if (paramsJson is not null)
        {
            message["params"] = JsonNode.Parse(paramsJson);
        }

        if (inputsJson is not null)
        {
            message["inputs"] = JsonNode.Parse(inputsJson);
        }

        return message.ToJsonString();
    }

    /// <summary>The engine's cancel message, as raw JSON.</summary>
    public static string CancelJson(string driver, string runId, string step, int attempt, string reason) =>
        $"{{\"run_id\":\"{runId}\",\"step\":\"{step}\",\"attempt\":{attempt.ToString(CultureInfo.InvariantCulture)},\"driver\":\"{driver}\",\"reason\":\"{reason}\"}}";

    /// <summary>Publishes raw bytes on core NATS (cancel messages are not stored by any stream).</summary>
    public static async Task PublishCoreAsync(INatsConnection connection, string subject, string body) =>
        await connection.PublishAsync(subject, Encoding.UTF8.GetBytes(body));

    public static async Task PublishAsync(INatsJSContext js, string subject, string body, NatsHeaders? headers = null)
    {
        var ack = await js.PublishAsync(subject, Encoding.UTF8.GetBytes(body), headers: headers);
        ack.EnsureSuccess();
    }

    public static NatsHeaders StepHeaders(string runId, string stepId, int attempt) => new()
    {
        [Headers.RunId] = runId,
        [Headers.StepId] = stepId,
        [Headers.Attempt] = attempt.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    /// <summary>A fresh driver name, so tests sharing a server never share consumers.</summary>
    public static string UniqueName(string prefix) => $"{prefix}-{Guid.NewGuid().ToString("N")[..8]}";
}
