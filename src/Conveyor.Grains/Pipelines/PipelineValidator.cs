using System.Globalization;
using Conveyor.Grains.Abstractions;

namespace Conveyor.Grains.Pipelines;

/// <summary>
/// Validates a pipeline and normalises its DAG: names, unique step ids, known dependencies, no cycle, sane retry and
/// timeout values. Errors are collected per field so the client sees every problem at once.
/// </summary>
internal static class PipelineValidator
{
    /// <summary>
    /// Checks webhook secrets once omitted ones were filled from the stored pipeline (secrets are write-only, so a
    /// read-modify-write carries none).
    /// </summary>
    public static void ValidateWebhookSecrets(PipelineSpec pipeline)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        for (var i = 0; i < pipeline.Webhooks.Count; i++)
        {
            if (pipeline.Webhooks[i].Secret.Length < 8)
            {
                errors[$"webhooks[{i}].secret"] = ["must be at least 8 characters (required for a new webhook)"];
            }
        }

        if (errors.Count > 0)
        {
            var first = errors.First();
            throw new ConveyorValidationException($"invalid pipeline: {first.Key}: {first.Value[0]}", errors);
        }
    }

    /// <summary>Validates <paramref name="pipeline"/> in place (filling implicit dependencies) or throws <see cref="ConveyorValidationException"/>.</summary>
    public static void ValidateAndNormalize(PipelineSpec pipeline)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        var errors = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        void Add(string field, string message)
        {
            if (!errors.TryGetValue(field, out var list))
            {
                errors[field] = list = [];
            }

            list.Add(message);
        }

        Check(pipeline.Name, "name", Add);
        Check(pipeline.ResourceType, "resource", Add);
        if (pipeline.Steps.Count == 0)
        {
            Add("steps", "a pipeline needs at least one step");
        }

        if (pipeline.Timeout is { } runTimeout && runTimeout <= TimeSpan.Zero)
        {
            Add("timeout", "must be positive");
        }

        CheckRetry(pipeline.Retry, "retry", Add);
        if (pipeline.Concurrency is < 1)
        {
            Add("concurrency", "must be at least 1");
        }

        if (pipeline.Retention is { } retention)
        {
            if (retention.Period < TimeSpan.Zero)
            {
                Add("retention.period", "must not be negative (0 keeps runs forever)");
            }

            if (retention.KeepLast is < 1)
            {
                Add("retention.keepLast", "must be at least 1");
            }
        }

        var scheduleNames = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < pipeline.Schedules.Count; i++)
        {
            var schedule = pipeline.Schedules[i];
            var prefix = $"schedules[{i}]";
            if (string.IsNullOrEmpty(schedule.Name))
            {
                schedule.Name = $"schedule-{i + 1}";
            }

            Check(schedule.Name, prefix + ".name", Add);
            if (!scheduleNames.Add(schedule.Name))
            {
                Add(prefix + ".name", $"duplicate schedule name '{schedule.Name}'");
            }

            if (!Triggers.Schedules.TryParse(schedule.Cron, out _, out var cronError))
            {
                Add(prefix + ".cron", cronError);
            }

            if (string.IsNullOrEmpty(schedule.TimeZone))
            {
                schedule.TimeZone = "UTC";
            }

            if (!Triggers.Schedules.TryFindZone(schedule.TimeZone, out _))
            {
                Add(prefix + ".timeZone", $"unknown time zone '{Names.Truncate(schedule.TimeZone)}' (use an IANA id such as Europe/Berlin)");
            }

            Check(schedule.Resource, prefix + ".resource", Add);
            if (schedule.Priority is < RunPriority.Min or > RunPriority.Max)
            {
                Add(prefix + ".priority", $"must be between {RunPriority.Min} and {RunPriority.Max}");
            }
        }

        var hookNames = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < pipeline.Webhooks.Count; i++)
        {
            var hook = pipeline.Webhooks[i];
            var prefix = $"webhooks[{i}]";
            Check(hook.Name, prefix + ".name", Add);
            if (!string.IsNullOrEmpty(hook.Name) && !hookNames.Add(hook.Name))
            {
                Add(prefix + ".name", $"duplicate webhook name '{hook.Name}'");
            }

            if (hook.Priority is < RunPriority.Min or > RunPriority.Max)
            {
                Add(prefix + ".priority", $"must be between {RunPriority.Min} and {RunPriority.Max}");
            }

            if (!hook.Resource.ContainsKey("name"))
            {
                Add(prefix + ".resource", "must map 'name' (a JSON pointer into the body, e.g. \"/repository/name\")");
            }

            foreach (var (field, pointer) in hook.Resource)
            {
                if (field != "name" && !field.StartsWith("spec.", StringComparison.Ordinal) && !field.StartsWith("metadata.", StringComparison.Ordinal))
                {
                    Add($"{prefix}.resource.{field}", "a mapped field is 'name', 'spec.<path>' or 'metadata.<key>'");
                }

                if (pointer.Length > 0 && pointer[0] != '/')
                {
                    Add($"{prefix}.resource.{field}", $"'{Names.Truncate(pointer)}' is not a JSON pointer (it starts with '/')");
                }
            }
        }

        if (pipeline.ConcurrencyGroup is { } group && !Flow.ConcurrencyKeys.IsValid(group.Key))
        {
            Add("concurrencyGroup.key", $"'{Names.Truncate(group.Key)}' is not a key path: use name, type, metadata.<key>, spec or spec.<member>[.<member>…]");
        }

        var ids = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < pipeline.Steps.Count; i++)
        {
            var step = pipeline.Steps[i];
            var prefix = $"steps[{i}]";
            if (string.IsNullOrEmpty(step.Id))
            {
                // The original treats ids as informational; a step without one gets its 1-based position.
                step.Id = (i + 1).ToString(CultureInfo.InvariantCulture);
            }

            Check(step.Id, prefix + ".id", Add);
            if (!ids.Add(step.Id))
            {
                Add(prefix + ".id", $"duplicate step id '{step.Id}'");
            }

            Check(step.Driver, prefix + ".driver", Add);
            if (step.Timeout is { } t && t <= TimeSpan.Zero)
            {
                Add(prefix + ".timeout", "must be positive");
            }

            CheckRetry(step.Retry, prefix + ".retry", Add);
            if (step.Secrets.Count > Security.SecretNames.MaxPerStep)
            {
                Add(prefix + ".secrets", $"at most {Security.SecretNames.MaxPerStep} secrets per step");
            }

            foreach (var secret in step.Secrets)
            {
                if (!Security.SecretNames.IsValid(secret))
                {
                    Add(prefix + ".secrets", $"'{Names.Truncate(secret ?? "")}' is not a secret name: letters, digits or '_', not starting with a digit");
                }
            }

            step.Secrets = step.Secrets.Distinct(StringComparer.Ordinal).ToList();
        }

        if (pipeline.Variables is { } variables)
        {
            if (variables.Count > 100)
            {
                Add("variables", "at most 100 variables");
            }

            foreach (var (name, value) in variables)
            {
                if (!Security.SecretNames.IsValid(name))
                {
                    Add("variables", $"'{Names.Truncate(name)}' is not a variable name: letters, digits or '_', not starting with a digit");
                }

                if (value is null || value.Length > 4096)
                {
                    Add($"variables.{Names.Truncate(name)}", "a variable's value is a string of at most 4096 characters");
                }
            }
        }

        var anyDeclared = pipeline.Steps.Any(s => s.DeclaredDependsOn);
        for (var i = 0; i < pipeline.Steps.Count; i++)
        {
            var step = pipeline.Steps[i];
            if (!anyDeclared)
            {
                step.DependsOn = i == 0 ? [] : [pipeline.Steps[i - 1].Id];
                continue;
            }

            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var dep in step.DependsOn)
            {
                if (!ids.Contains(dep))
                {
                    Add($"steps[{i}].dependsOn", $"unknown step '{dep}'");
                }
                else if (!seen.Add(dep))
                {
                    Add($"steps[{i}].dependsOn", $"step '{dep}' is listed twice");
                }
            }
        }

        if (errors.Count == 0 && FindCycle(pipeline.Steps) is { } cycle)
        {
            Add("steps", $"dependency cycle: {string.Join(" -> ", cycle)}");
        }

        if (errors.Count > 0)
        {
            var first = errors.First();
            throw new ConveyorValidationException(
                $"invalid pipeline: {first.Key}: {first.Value[0]}",
                errors.ToDictionary(e => e.Key, e => e.Value.ToArray(), StringComparer.Ordinal));
        }
    }

    private static void Check(string? name, string field, Action<string, string> add)
    {
        if (string.IsNullOrEmpty(name))
        {
            add(field, "is required");
        }
        else if (!Names.IsValid(name))
        {
            add(field, $"must be 1-{Names.MaxLength} lowercase letters, digits or '-', starting and ending with a letter or digit (got '{Names.Truncate(name)}')");
        }
    }

    private static void CheckRetry(RetryPolicy? retry, string field, Action<string, string> add)
    {
        if (retry is null)
        {
            return;
        }

        if (retry.MaxAttempts < 1)
        {
            add(field + ".maxAttempts", "must be at least 1");
        }

        if (retry.InitialDelay < TimeSpan.Zero)
        {
            add(field + ".initialDelay", "must not be negative");
        }

        if (retry.MaxDelay < TimeSpan.Zero)
        {
            add(field + ".maxDelay", "must not be negative");
        }

        if (retry.Multiplier < 1 || double.IsNaN(retry.Multiplier) || double.IsInfinity(retry.Multiplier))
        {
            add(field + ".multiplier", "must be at least 1");
        }

        if (retry.Jitter is < 0 or > 1 || double.IsNaN(retry.Jitter))
        {
            add(field + ".jitter", "must be between 0 and 1");
        }
    }

    /// <summary>Returns one cycle as a closed path of step ids (first id repeated at the end), or null.</summary>
    public static List<string>? FindCycle(IReadOnlyList<StepSpec> steps)
    {
        ArgumentNullException.ThrowIfNull(steps);
        var byId = steps.ToDictionary(s => s.Id, StringComparer.Ordinal);
        var color = new Dictionary<string, int>(StringComparer.Ordinal); // 0 white, 1 grey, 2 black
        var stack = new List<string>();

        // Iterative DFS: a 1,000-step chain must not overflow the stack.
        foreach (var root in steps)
        {
            if (color.GetValueOrDefault(root.Id) != 0)
            {
                continue;
            }

            var work = new Stack<(string Id, int Next)>();
            work.Push((root.Id, 0));
            color[root.Id] = 1;
            stack.Add(root.Id);
            while (work.Count > 0)
            {
                var (id, next) = work.Pop();
                var deps = byId[id].DependsOn;
                if (next < deps.Count)
                {
                    work.Push((id, next + 1));
                    var dep = deps[next];
                    var c = color.GetValueOrDefault(dep);
                    if (c == 1)
                    {
                        var start = stack.IndexOf(dep);
                        var cycle = stack.GetRange(start, stack.Count - start);
                        cycle.Add(dep);
                        // The stack follows "depends on" edges; report in execution order (a -> b means b waits for a).
                        cycle.Reverse();
                        return cycle;
                    }

                    if (c == 0)
                    {
                        color[dep] = 1;
                        stack.Add(dep);
                        work.Push((dep, 0));
                    }
                }
                else
                {
                    color[id] = 2;
                    stack.RemoveAt(stack.Count - 1);
                }
            }
        }

        return null;
    }
}
