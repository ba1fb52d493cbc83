using System.Globalization;
using Conveyor.Grains.Abstractions;

namespace Conveyor.Grains.Pipelines;

/// <summary>
/// Validates a pipeline and normalises its DAG: names, unique step ids, known dependencies, no cycle, sane retry and
/// timeout values. Errors are collected per field so the client sees every problem at once.
/// </summary>
internal static class PipelineValidator
{
    /// <summary>Shortest webhook key accepted: 32 characters, so a random one carries at least 128 bits.</summary>
    public const int MinWebhookSecretLength = 32;

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
        var paths = StepPaths(pipeline.Steps);
        for (var i = 0; i < pipeline.Steps.Count; i++)
        {
            var step = pipeline.Steps[i];
            var prefix = paths[i];
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

            CheckKind(step, prefix, pipeline.Name, Add);
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

        if (pipeline.Steps.Count > 0 && pipeline.Steps.All(s => s.Finally))
        {
            Add("steps", "a pipeline needs at least one step besides its finally steps");
        }

        // The main steps and the finally steps are each a DAG of their own: the original's implicit order (each step
        // after the one before, when none of the group declares dependsOn) applies within each group.
        var finallyIds = pipeline.Steps.Where(s => s.Finally).Select(s => s.Id).ToHashSet(StringComparer.Ordinal);
        foreach (var isFinally in new[] { false, true })
        {
            var members = pipeline.Steps.Select((s, i) => (Step: s, Index: i)).Where(x => x.Step.Finally == isFinally).ToList();
            var anyDeclared = members.Exists(x => x.Step.DeclaredDependsOn);
            for (var g = 0; g < members.Count; g++)
            {
                var (step, i) = members[g];
                if (!anyDeclared)
                {
                    step.DependsOn = g == 0 ? [] : [members[g - 1].Step.Id];
                    continue;
                }

                var seen = new HashSet<string>(StringComparer.Ordinal);
                foreach (var dep in step.DependsOn)
                {
                    if (!ids.Contains(dep))
                    {
                        Add(paths[i] + ".dependsOn", $"unknown step '{dep}'");
                    }
                    else if (!seen.Add(dep))
                    {
                        Add(paths[i] + ".dependsOn", $"step '{dep}' is listed twice");
                    }
                    else if (finallyIds.Contains(dep) != isFinally)
                    {
                        Add(paths[i] + ".dependsOn", isFinally
                            ? $"a finally step depends on finally steps only; '{dep}' is a main step (use 'when' on steps.{dep}.status)"
                            : $"a main step may not depend on the finally step '{dep}'");
                    }
                }
            }
        }

        for (var i = 0; i < pipeline.Steps.Count; i++)
        {
            CheckMatrixInput(pipeline.Steps[i], paths[i] + ".matrix.fromInput", Add);
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

    /// <summary>
    /// Where each step is on the wire: <c>steps[i]</c> for the i-th main step, <c>finally[j]</c> for the j-th finally
    /// step (the model keeps both in one list, the finally steps flagged).
    /// </summary>
    public static string[] StepPaths(IReadOnlyList<StepSpec> steps)
    {
        ArgumentNullException.ThrowIfNull(steps);
        var paths = new string[steps.Count];
        var (main, final) = (0, 0);
        for (var i = 0; i < steps.Count; i++)
        {
            paths[i] = steps[i].Finally ? $"finally[{final++}]" : $"steps[{main++}]";
        }

        return paths;
    }

    /// <summary>What each kind of step must and may not have, its condition and its matrix.</summary>
    private static void CheckKind(StepSpec step, string prefix, string pipelineName, Action<string, string> add)
    {
        var kind = step.Kind.ToString().ToLowerInvariant();
        if (step.Kind == StepKind.Driver)
        {
            Check(step.Driver, prefix + ".driver", add);
        }
        else
        {
            if (!string.IsNullOrEmpty(step.Driver))
            {
                add(prefix + ".driver", $"a {kind} step has no driver");
            }

            if (step.Retry is not null)
            {
                add(prefix + ".retry", $"a {kind} step is not retried (retry applies to driver steps)");
            }

            if (step.Secrets.Count > 0)
            {
                add(prefix + ".secrets", $"a {kind} step has no driver to hand secrets to");
            }

            if (step.Matrix is not null)
            {
                add(prefix + ".matrix", $"a {kind} step has no matrix (a matrix fans out driver steps)");
            }
        }

        if (step.Kind == StepKind.Approval)
        {
            step.Approvers ??= "operator";
            if (step.Approvers is not ("operator" or "admin"))
            {
                add(prefix + ".approvers", $"must be 'operator' or 'admin' (got '{Names.Truncate(step.Approvers)}')");
            }
        }
        else if (step.Approvers is not null)
        {
            add(prefix + ".approvers", "only an approval step has approvers");
        }

        if (step.Kind == StepKind.Pipeline)
        {
            Check(step.Pipeline, prefix + ".pipeline", add);
            if (step.Pipeline == pipelineName)
            {
                add(prefix + ".pipeline", $"a pipeline may not run itself as a sub-pipeline ('{pipelineName}')");
            }
        }
        else if (step.Pipeline is not null)
        {
            add(prefix + ".pipeline", "only a sub-pipeline step names a pipeline");
        }

        if (step.When is { } when && Runs.Conditions.CelConditions.Check(when) is { } error)
        {
            add(prefix + ".when", $"step '{step.Id}': invalid condition: {error}");
        }

        if (step.Matrix is { } matrix)
        {
            CheckMatrix(step, matrix, prefix + ".matrix", add);
        }
    }

    /// <summary>Most instances of one matrix step.</summary>
    public const int MaxMatrixInstances = 256;

    private static void CheckMatrix(StepSpec step, MatrixSpec matrix, string field, Action<string, string> add)
    {
        if (matrix.MaxParallel is < 1)
        {
            add(field + ".maxParallel", "must be at least 1");
        }

        if (matrix.FromInput is not null)
        {
            if (matrix.Axes.Count > 0)
            {
                add(field, "a matrix has either axes or fromInput, not both");
            }

            return;
        }

        if (matrix.Axes.Count == 0)
        {
            add(field, "a matrix needs axes (e.g. {\"os\": [\"linux\", \"windows\"]}) or fromInput (\"<step id>.<field>\")");
            return;
        }

        if (matrix.Axes.Count > 8)
        {
            add(field + ".axes", "at most 8 axes");
        }

        long combinations = 1;
        foreach (var axis in matrix.Axes)
        {
            if (!Security.SecretNames.IsValid(axis.Name))
            {
                add($"{field}.axes.{Names.Truncate(axis.Name)}", $"'{Names.Truncate(axis.Name)}' is not an axis name: letters, digits or '_', not starting with a digit");
            }

            if (axis.Values.Count == 0)
            {
                add($"{field}.axes.{Names.Truncate(axis.Name)}", "an axis needs at least one value");
            }

            combinations *= Math.Max(1, axis.Values.Count);
            if (combinations > MaxMatrixInstances)
            {
                add(field + ".axes", $"step '{step.Id}': more than {MaxMatrixInstances} combinations");
                return;
            }
        }
    }

    /// <summary>A <c>fromInput</c> names a field of one of the step's own dependencies (known once dependencies are normalised).</summary>
    private static void CheckMatrixInput(StepSpec step, string field, Action<string, string> add)
    {
        if (step.Matrix?.FromInput is not { } from)
        {
            return;
        }

        var dot = from.IndexOf('.', StringComparison.Ordinal);
        if (dot <= 0 || dot == from.Length - 1 || from.Split('.').Any(p => p.Length == 0))
        {
            add(field, $"'{Names.Truncate(from)}' is not '<step id>.<field>[.<field>…]'");
        }
        else if (!step.DependsOn.Contains(from[..dot], StringComparer.Ordinal))
        {
            add(field, $"'{from[..dot]}' is not a dependency of step '{step.Id}' (fromInput reads a dependency's output)");
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
