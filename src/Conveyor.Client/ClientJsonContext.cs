using System.Text.Json;
using System.Text.Json.Serialization;
using Conveyor.Contracts;

namespace Conveyor.Client;

/// <summary>Source-generated serializer metadata for the HTTP client (no reflection, trimming- and AOT-safe).</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(ResourceDefinition))]
[JsonSerializable(typeof(Pipeline))]
[JsonSerializable(typeof(CreateResourceRequest))]
[JsonSerializable(typeof(CreateResourceResponse))]
[JsonSerializable(typeof(Resource))]
[JsonSerializable(typeof(RunInfo))]
[JsonSerializable(typeof(RunPage))]
[JsonSerializable(typeof(ArchivedRun))]
[JsonSerializable(typeof(CancelRunRequest))]
[JsonSerializable(typeof(ApprovalRequest))]
[JsonSerializable(typeof(RunEvent))]
[JsonSerializable(typeof(TriggerRunRequest))]
[JsonSerializable(typeof(LogLine))]
[JsonSerializable(typeof(LogPage))]
[JsonSerializable(typeof(LogEnd))]
[JsonSerializable(typeof(ConveyorProblem))]
[JsonSerializable(typeof(ResourceDefinitionPage))]
[JsonSerializable(typeof(PipelinePage))]
[JsonSerializable(typeof(ResourcePage))]
[JsonSerializable(typeof(PipelineQueue))]
[JsonSerializable(typeof(WebhookRunResponse))]
[JsonSerializable(typeof(CreateApiKeyRequest))]
[JsonSerializable(typeof(ApiKeyEntry))]
[JsonSerializable(typeof(ApiKeyList))]
[JsonSerializable(typeof(CreateNamespaceRequest))]
[JsonSerializable(typeof(NamespaceEntry))]
[JsonSerializable(typeof(NamespaceList))]
[JsonSerializable(typeof(PutSecretRequest))]
[JsonSerializable(typeof(SecretEntry))]
[JsonSerializable(typeof(SecretList))]
[JsonSerializable(typeof(StepSecrets))]
[JsonSerializable(typeof(HealthStatus))]
[JsonSerializable(typeof(LogEntry))]
[JsonSerializable(typeof(List<LogEntry>))]
[JsonSerializable(typeof(JsonElement))]
internal sealed partial class ClientJsonContext : JsonSerializerContext;
