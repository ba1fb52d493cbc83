using System.Text.Json;
using Conveyor.Client;
using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Flow;
using Conveyor.Grains.Logs;
using Conveyor.Grains.Security;

namespace Conveyor.Api.Http;

/// <summary>
/// Turns the engine's state into the wire DTOs of <c>Conveyor.Client</c>, the one definition of the HTTP shapes that
/// the server and every client share. Only this direction lives here: grain state never leaves the server.
/// </summary>
internal static class ApiMapping
{
    /// <summary>A stored resource definition.</summary>
    public static ResourceDefinition ToDefinition(ResourceDefinitionData d) => new()
    {
        Id = d.Id,
        Name = d.Name,
        Description = d.Description,
        Version = d.Version,
        Schema = Json(d.Schema),
    };

    /// <summary>A run with its steps and attempts.</summary>
    public static RunInfo ToRunInfo(RunState run, int? queuePosition = null)
    {
        var specs = run.Plan.Pipeline.Steps.ToDictionary(s => s.Id, StringComparer.Ordinal);
        return new RunInfo
        {
            Id = run.RunId,
            Namespace = run.Plan.Namespace,
            Pipeline = run.Plan.Pipeline.Name,
            PipelineVersion = run.Plan.Pipeline.Version,
            PipelineRevision = run.Plan.Pipeline.Revision,
            ResourceType = run.Plan.Resource.Type,
            ResourceName = run.Plan.Resource.Name,
            Status = run.Status,
            Message = run.Message,
            CreatedAt = run.CreatedAt,
            StartedAt = run.StartedAt,
            FinishedAt = run.FinishedAt,
            RunAttempt = run.RunAttempt,
            Priority = run.Plan.Priority,
            QueuePosition = run.Status == RunStatus.Queued ? queuePosition : null,
            Trigger = run.Plan.Trigger,
            TriggerId = run.Plan.TriggerId,
            TriggeredBy = run.Plan.TriggeredBy,
            CancelledBy = run.CancelledBy,
            RetriedBy = run.RetriedBy,
            Params = Json(run.Plan.Params),
            DeadlineAt = run.DeadlineAt,
            ExpiresAt = run.ExpiresAt,
            Steps = run.Steps.Select(s => ToStepInfo(s, specs[s.Id])).ToList(),
            Parent = run.Plan.ParentRunId is { } parent ? new ParentRun { RunId = parent, Step = run.Plan.ParentStep ?? "" } : null,
            PausedAt = run.PausedAt,
            PausedBy = run.PausedBy,
        };
    }

    /// <summary>A step of a run (a matrix step with its instances).</summary>
    private static StepInfo ToStepInfo(StepState s, StepSpec spec)
    {
        var current = s.Current;
        return new StepInfo
        {
            Id = s.Id,
            Name = spec.Name,
            Driver = spec.Driver,
            DependsOn = spec.DependsOn,
            Status = s.Status,
            Attempt = current?.Number ?? 0,
            WaitingForDriver = s.Status.IsInFlight() && s.Instances is null && spec.Kind == StepKind.Driver && current is { Published: false },
            Message = current?.Message ?? "",
            Data = Json(s.Output),
            NextAttemptAt = s.NextAttemptAt,
            DeadlineAt = s.DeadlineAt,
            Attempts = s.Attempts.Select(a => new AttemptInfo
            {
                Number = a.Number,
                DispatchedAt = a.DispatchedAt,
                PublishedAt = a.PublishedAt,
                FinishedAt = a.FinishedAt,
                Success = a.Success,
                Message = a.Message,
                Data = Json(a.Data),
                TimedOut = a.TimedOut,
                LastHeartbeatAt = a.LastHeartbeatAt,
            }).ToList(),
            Type = LanguageMapping.Kind(spec.Kind),
            Finally = spec.Finally,
            SkipReason = s.Status == StepStatus.Skipped ? LanguageMapping.Skip(s.SkipReason) : null,
            Reason = s.Reason,
            Matrix = Json(s.Matrix),
            Instances = s.Instances?.Select(i => ToStepInfo(i, spec)).ToList(),
            Approval = s.Approval is { } a ? new StepApproval { Approved = a.Approved, By = a.By, At = a.At, Comment = a.Comment } : null,
            ChildRunId = s.ChildRunId,
        };
    }

    /// <summary>A run as listings show it.</summary>
    public static RunSummaryInfo ToRunSummary(RunSummary s) => new()
    {
        Id = s.RunId,
        Namespace = s.Namespace,
        Pipeline = s.Pipeline,
        PipelineRevision = s.PipelineRevision,
        ResourceType = s.ResourceType,
        ResourceName = s.ResourceName,
        Status = s.Status,
        CreatedAt = s.CreatedAt,
        FinishedAt = s.FinishedAt,
        Message = s.Message,
        ExpiresAt = s.ExpiresAt,
    };

    /// <summary>A run in an admission queue.</summary>
    public static QueueEntry ToQueueEntry(QueuedRun q, int? position) => new()
    {
        Id = q.RunId,
        Priority = q.Priority,
        Group = q.Group,
        Position = position,
        QueuedAt = q.QueuedAt,
    };

    /// <summary>A stored log entry with its sequence number.</summary>
    public static LogLine ToLogLine(StoredLogEntry stored) => new()
    {
        Seq = stored.Sequence,
        RunId = stored.Entry.RunId,
        Driver = stored.Entry.Driver,
        Pipeline = stored.Entry.Pipeline,
        Timestamp = stored.Entry.Timestamp,
        Message = stored.Entry.Message,
        Labels = stored.Entry.Labels switch
        {
            null => null,
            IReadOnlyDictionary<string, string> labels => labels,
            var labels => new Dictionary<string, string>(labels, StringComparer.Ordinal),
        },
    };

    /// <summary>An API key, with its full secret only when <paramref name="secretKey"/> is given (creation).</summary>
    public static ApiKeyEntry ToApiKey(ApiKeyData key, string? secretKey = null) => new()
    {
        Id = key.Id,
        Name = key.Name,
        Role = key.Role.ToString().ToLowerInvariant(),
        Namespaces = key.Role == ApiRole.Admin ? ["*"] : key.Namespaces,
        CreatedAt = key.CreatedAt,
        RevokedAt = key.RevokedAt,
        Key = secretKey,
    };

    /// <summary>A namespace.</summary>
    public static NamespaceEntry ToNamespace(NamespaceInfo info) =>
        new() { Name = info.Name, CreatedAt = info.CreatedAt == default ? null : info.CreatedAt, DeletingSince = info.DeletingSince };

    /// <summary>A secret's name and version (never its value).</summary>
    public static SecretEntry ToSecret(SecretInfo info) => new() { Name = info.Name, Version = info.Version, UpdatedAt = info.UpdatedAt, KeyId = info.KeyId };

    private static JsonElement? Json(string? raw) => raw is null ? null : JsonSerializer.Deserialize<JsonElement>(raw);
}
