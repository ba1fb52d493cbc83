using System.Text.Json;
using Conveyor.Client;
using Conveyor.Grains.Abstractions;

namespace Conveyor.Api.Http;

/// <summary>Converts pipelines between the wire shape and the engine's model, naming every field it rejects.</summary>
internal static class PipelineMapping
{
    /// <summary>Converts a request body; throws <see cref="ConveyorValidationException"/> with every error found.</summary>
    public static PipelineSpec ToSpec(Pipeline dto)
    {
        ArgumentNullException.ThrowIfNull(dto);
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        var spec = new PipelineSpec
        {
            Name = dto.Name ?? "",
            Description = dto.Description ?? "",
            Version = dto.Version ?? "",
            ResourceType = dto.Resource ?? "",
            Metadata = dto.Metadata is null ? null : new Dictionary<string, string>(dto.Metadata, StringComparer.Ordinal),
            Timeout = Duration(dto.Timeout, "timeout", errors),
            Retry = Retry(dto.Retry, "retry", errors),
            Variables = dto.Variables is { Count: > 0 } v ? new Dictionary<string, string>(v, StringComparer.Ordinal) : null,
        };

        foreach (var (key, i) in (dto.OverridableParams ?? []).Select((k, i) => (k, i)))
        {
            if (string.IsNullOrEmpty(key) || key.Length > 128)
            {
                errors[$"overridableParams[{i}]"] = ["must be a params key of 1-128 characters"];
            }
            else if (!spec.OverridableParams.Contains(key, StringComparer.Ordinal))
            {
                spec.OverridableParams.Add(key);
            }
        }

        spec.Concurrency = dto.Concurrency;
        if (dto.Retention is { } retention)
        {
            spec.Retention = new RetentionSpec
            {
                Period = retention.Period is "0" ? TimeSpan.Zero : Duration(retention.Period, "retention.period", errors),
                KeepLast = retention.KeepLast,
            };
        }

        if (dto.ConcurrencyGroup is { } group)
        {
            spec.ConcurrencyGroup = new ConcurrencyGroupSpec { Key = group.Key ?? "" };
            switch (group.OnConflict)
            {
                case null or "" or "queue":
                    break;
                case "cancel-in-progress":
                    spec.ConcurrencyGroup.OnConflict = GroupConflictPolicy.CancelInProgress;
                    break;
                default:
                    errors["concurrencyGroup.onConflict"] = [$"must be 'queue' or 'cancel-in-progress' (got '{group.OnConflict}')"];
                    break;
            }
        }

        var schedules = dto.Schedules ?? [];
        for (var i = 0; i < schedules.Count; i++)
        {
            if (schedules[i] is not { } sd)
            {
                errors[$"schedules[{i}]"] = ["must be an object"];
                continue;
            }

            var schedule = new ScheduleSpec
            {
                Name = sd.Name ?? "",
                Cron = sd.Cron ?? "",
                TimeZone = sd.TimeZone ?? "UTC",
                Resource = sd.Resource ?? "",
                Priority = sd.Priority ?? RunPriority.Default,
            };
            switch (sd.MissedFire)
            {
                case null or "" or "fireOnce":
                    break;
                case "skip":
                    schedule.MissedFire = MissedFirePolicy.Skip;
                    break;
                default:
                    errors[$"schedules[{i}].missedFire"] = [$"must be 'fireOnce' or 'skip' (got '{sd.MissedFire}')"];
                    break;
            }

            spec.Schedules.Add(schedule);
        }

        var hooks = dto.Webhooks ?? [];
        for (var i = 0; i < hooks.Count; i++)
        {
            if (hooks[i] is not { } hd)
            {
                errors[$"webhooks[{i}]"] = ["must be an object"];
                continue;
            }

            spec.Webhooks.Add(new WebhookSpec
            {
                Name = hd.Name ?? "",
                Secret = hd.Secret ?? "",
                Resource = hd.Resource is null ? new(StringComparer.Ordinal) : new(hd.Resource, StringComparer.Ordinal),
                Priority = hd.Priority ?? RunPriority.Default,
                RequireTimestamp = hd.RequireTimestamp,
            });
        }

        switch (dto.FailurePolicy)
        {
            case null or "" or "failFast":
                spec.FailurePolicy = FailurePolicy.FailFast;
                break;
            case "continue":
                spec.FailurePolicy = FailurePolicy.Continue;
                break;
            default:
                errors["failurePolicy"] = [$"must be 'failFast' or 'continue' (got '{dto.FailurePolicy}')"];
                break;
        }

        // The finally steps follow the main steps in the model, flagged; the validator names them finally[j] again.
        foreach (var (list, section) in new[] { (dto.Steps ?? [], "steps"), (dto.Finally ?? [], "finally") })
        {
            for (var i = 0; i < list.Count; i++)
            {
                var s = list[i];
                var prefix = $"{section}[{i}]";
                if (s is null)
                {
                    errors[prefix] = ["must be an object"];
                    continue;
                }

                var step = new StepSpec
                {
                    Id = s.Id ?? "",
                    Name = s.Name ?? "",
                    Driver = s.Driver ?? "",
                    DependsOn = s.DependsOn?.ToList() ?? [],
                    DeclaredDependsOn = s.DependsOn is not null,
                    Retry = Retry(s.Retry, prefix + ".retry", errors),
                    Timeout = Duration(s.Timeout, prefix + ".timeout", errors),
                    Params = s.Params is { ValueKind: not JsonValueKind.Null and not JsonValueKind.Undefined } p ? p.GetRawText() : null,
                    AllowFailure = s.AllowFailure,
                    Secrets = s.Secrets?.ToList() ?? [],
                    Finally = section == "finally",
                };
                LanguageMapping.ToSpec(s, step, prefix, errors);
                spec.Steps.Add(step);
            }
        }

        if (errors.Count > 0)
        {
            var first = errors.First();
            throw new ConveyorValidationException($"invalid pipeline: {first.Key}: {first.Value[0]}", errors);
        }

        return spec;
    }

    /// <summary>Converts a stored pipeline to the wire shape (extension fields only where set; never a webhook secret).</summary>
    public static Pipeline ToDto(PipelineSpec spec, string? hookBase = null)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return new Pipeline
        {
            Schedules = spec.Schedules.Count == 0 ? null : spec.Schedules.Select(s => new PipelineSchedule
            {
                Name = s.Name,
                Cron = s.Cron,
                TimeZone = s.TimeZone,
                Resource = s.Resource,
                Priority = s.Priority,
                MissedFire = s.MissedFire == MissedFirePolicy.Skip ? "skip" : "fireOnce",
            }).ToList(),
            Webhooks = spec.Webhooks.Count == 0 ? null : spec.Webhooks.Select(h => new PipelineWebhook
            {
                Name = h.Name,
                Resource = h.Resource,
                Priority = h.Priority,
                RequireTimestamp = h.RequireTimestamp,
                Url = hookBase is null ? null : $"{hookBase}/{h.Name}",
            }).ToList(),
            OverridableParams = spec.OverridableParams.Count == 0 ? null : spec.OverridableParams,
            Name = spec.Name,
            Description = spec.Description,
            Version = spec.Version,
            Resource = spec.ResourceType,
            Metadata = spec.Metadata,
            Timeout = spec.Timeout is { } t ? Durations.Format(t) : null,
            FailurePolicy = spec.FailurePolicy == FailurePolicy.Continue ? "continue" : null,
            Retry = ToRetrySettings(spec.Retry),
            Revision = spec.Revision,
            Variables = spec.Variables,
            Concurrency = spec.Concurrency,
            Retention = spec.Retention is { } r
                ? new PipelineRetention { Period = r.Period is { } p ? (p == TimeSpan.Zero ? "0" : Durations.Format(p)) : null, KeepLast = r.KeepLast }
                : null,
            ConcurrencyGroup = spec.ConcurrencyGroup is { } g
                ? new ConcurrencyGroup { Key = g.Key, OnConflict = g.OnConflict == GroupConflictPolicy.CancelInProgress ? "cancel-in-progress" : "queue" }
                : null,
            Steps = spec.Steps.Where(s => !s.Finally).Select(StepToDto).ToList(),
            Finally = spec.Steps.Any(s => s.Finally) ? spec.Steps.Where(s => s.Finally).Select(StepToDto).ToList() : null,
        };
    }

    private static PipelineStep StepToDto(StepSpec s) => LanguageMapping.ToDto(
        new PipelineStep
        {
            Id = s.Id,
            Name = s.Name,
            Driver = s.Driver,
            DependsOn = s.DeclaredDependsOn ? s.DependsOn : null,
            Retry = ToRetrySettings(s.Retry),
            Timeout = s.Timeout is { } st ? Durations.Format(st) : null,
            Params = s.Params is null ? null : JsonSerializer.Deserialize<JsonElement>(s.Params),
            AllowFailure = s.AllowFailure,
            Secrets = s.Secrets is { Count: > 0 } secrets ? secrets : null,
        },
        s);

    private static RetrySettings? ToRetrySettings(RetryPolicy? r) => r is null
        ? null
        : new RetrySettings
        {
            MaxAttempts = r.MaxAttempts,
            InitialDelay = Durations.Format(r.InitialDelay),
            MaxDelay = Durations.Format(r.MaxDelay),
            Multiplier = r.Multiplier,
            Jitter = r.Jitter,
        };

    private static RetryPolicy? Retry(RetrySettings? dto, string field, Dictionary<string, string[]> errors)
    {
        if (dto is null)
        {
            return null;
        }

        var policy = new RetryPolicy();
        policy.MaxAttempts = dto.MaxAttempts ?? policy.MaxAttempts;
        policy.InitialDelay = Duration(dto.InitialDelay, field + ".initialDelay", errors) ?? policy.InitialDelay;
        policy.MaxDelay = Duration(dto.MaxDelay, field + ".maxDelay", errors) ?? policy.MaxDelay;
        policy.Multiplier = dto.Multiplier ?? policy.Multiplier;
        policy.Jitter = dto.Jitter ?? policy.Jitter;
        return policy;
    }

    private static TimeSpan? Duration(string? text, string field, Dictionary<string, string[]> errors)
    {
        if (text is null)
        {
            return null;
        }

        if (Durations.TryParse(text, out var value))
        {
            return value;
        }

        errors[field] = [$"'{text}' is not a duration (use e.g. '30s', '5m', '1h30m', '250ms' or '00:00:30')"];
        return null;
    }
}
