using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Runs.Conditions;
using Conveyor.Grains.Runs.Engine;

namespace Conveyor.Engine.Tests;

/// <summary>Step conditions (<c>when</c>): evaluated when the step becomes ready, a false one skips it and satisfies its dependents.</summary>
public sealed class ConditionTests
{
    public static TheoryData<string, string, string?, string[], string, RunStatus> Rules => new()
    {
        { "a false condition skips the step and its dependent runs", "a b:a c:b", "params.env == 'prod'", ["ok a", "ok c"], "a=Succeeded b=Skipped c=Succeeded", RunStatus.Succeeded },
        { "a true condition runs the step", "a b:a c:b", "params.env == 'dev'", ["ok a", "ok b", "ok c"], "a=Succeeded b=Succeeded c=Succeeded", RunStatus.Succeeded },
        { "a condition over its input", "a b:a c:b", "inputs.a.from.startsWith('x')", ["ok a", "ok c"], "a=Succeeded b=Skipped c=Succeeded", RunStatus.Succeeded },
        { "a condition over another step's status", "a x b:a c:b", "steps.x.status == 'Succeeded'", ["ok x", "ok a", "ok b", "ok c"], "a=Succeeded x=Succeeded b=Succeeded c=Succeeded", RunStatus.Succeeded },
        { "a condition over the resource and the trigger", "a b:a", "resource.spec.image == 'nginx' && trigger.type == 'resource'", ["ok a", "ok b"], "a=Succeeded b=Succeeded", RunStatus.Succeeded },
        { "a skip by condition at the root", "b a:b", "false", ["ok a"], "b=Skipped a=Succeeded", RunStatus.Succeeded },
        { "a condition that cannot be evaluated fails the step and fail-fast skips the rest", "a b:a c:b", "params.missing == 1", ["ok a"], "a=Succeeded b=Failed c=Skipped", RunStatus.Failed },
    };

    [Theory]
    [MemberData(nameof(Rules))]
    public void A_condition_decides_whether_its_step_runs(string rule, string steps, string? when, string[] script, string statuses, RunStatus run)
    {
        var h = new RunHarness(RunHarness.Pipeline(steps).With("b", s => s.When = when), runParams: """{"env":"dev"}""");
        h.Start();
        h.Script(script);
        Assert.True(statuses == h.Statuses(), $"{rule}: expected {statuses}, got {h.Statuses()}\n{string.Join('\n', h.Transcript)}");
        Assert.Equal(run, h.Run.Status);
    }

    [Fact]
    public void A_step_skipped_by_its_condition_says_why_and_dispatches_its_dependent_in_the_same_transition()
    {
        var h = new RunHarness(RunHarness.Pipeline("a b:a c:b").With("b", s => s.When = "params.env == 'prod'"), runParams: """{"env":"dev"}""");
        h.Start();
        Assert.Equal(["persist", "dispatch c#1", "arm none"], h.Result("a", 1000));
        var b = h.Machine.Step("b");
        Assert.Equal(SkipReason.Condition, b.SkipReason);
        Assert.Equal("condition 'params.env == 'prod'' is false", b.Reason);
        Assert.Empty(b.Attempts);
    }

    [Fact]
    public void A_step_skipped_because_a_dependency_failed_still_blocks_its_dependents()
    {
        var h = new RunHarness(RunHarness.Pipeline("a b:a c:b", FailurePolicy.Continue));
        h.Start();
        h.Result("a", 1000, success: false);
        Assert.Equal("a=Failed b=Skipped c=Skipped", h.Statuses());
        Assert.Equal(SkipReason.Dependency, h.Machine.Step("b").SkipReason);
        Assert.Equal("dependency a failed", h.Machine.Step("b").Reason);
        Assert.Equal("dependency b was skipped", h.Machine.Step("c").Reason);
        Assert.Equal(RunStatus.Failed, h.Run.Status);
    }

    [Fact]
    public void A_condition_is_evaluated_once_when_its_step_becomes_ready_not_before()
    {
        var evaluator = new CountingEvaluator(true);
        var h = new RunHarness(RunHarness.Pipeline("a b c:a,b").With("c", s => s.When = "true"), new RunMachineOptions { EmitEvents = false, EmitRunEvents = false, Conditions = evaluator });
        h.Start();
        h.Result("a", 1000);
        Assert.Equal(0, evaluator.Calls);
        Assert.Contains("dispatch c#1", h.Result("b", 2000));
        Assert.Equal(1, evaluator.Calls);
        Assert.Equal(["a", "b"], evaluator.LastScope!.Inputs.Select(i => i.Key));
        Assert.Equal("Running", evaluator.LastScope.RunStatus);
    }

    [Fact]
    public void A_retried_run_keeps_a_step_its_condition_skipped_and_reruns_what_failed()
    {
        var h = new RunHarness(RunHarness.Pipeline("a b:a c:b").With("b", s => s.When = "false"));
        h.Start();
        h.Result("a", 1000);
        h.Result("c", 2000, success: false);
        Assert.Equal(RunStatus.Failed, h.Run.Status);
        Assert.Contains("dispatch c#2", h.Do(new RetryRun(null), 3000));
        Assert.Equal("a=Succeeded b=Skipped c=Dispatched", h.Statuses());
    }

    public static TheoryData<string, string> BadExpressions => new()
    {
        { "params.env ==", "syntax error" },
        { "secrets.token == 'x'", "unknown variable 'secrets'" },
        { "params.list.all(x, params.list.all(y, x == y))", "may not be nested" },
        { "google.protobuf.Struct{}.fields == {}", "may not construct messages" },
        { new string('a', CelConditions.MaxLength + 1), "longer than" },
    };

    [Theory]
    [MemberData(nameof(BadExpressions))]
    public void A_bad_expression_is_refused_with_what_is_wrong(string expression, string error)
    {
        var message = CelConditions.Check(expression);
        Assert.NotNull(message);
        Assert.Contains(error, message, StringComparison.Ordinal);
    }

    [Fact]
    public void Comprehension_variables_are_not_unknown_variables()
    {
        Assert.Null(CelConditions.Check("steps.all(s, steps[s].status != 'Failed') && inputs.build.tags.exists(t, t == 'latest')"));
    }

    [Fact]
    public void A_hostile_pattern_does_not_backtrack()
    {
        var result = CelConditions.Shared.Evaluate("params.s.matches('^(a+)+$')", new ConditionScope { Params = $$"""{"s":"{{new string('a', 5000)}}!"}""" });
        Assert.Null(result.Error);
        Assert.False(result.Value);
    }

    [Fact]
    public void An_evaluation_that_reads_more_than_its_budget_fails()
    {
        var big = "[" + string.Join(",", Enumerable.Range(0, CelConditions.MaxValues + 10)) + "]";
        var result = CelConditions.Shared.Evaluate("size(inputs.a) > 0", new ConditionScope { Inputs = [new("a", big)] });
        Assert.Contains("more than its inputs may hold", result.Error, StringComparison.Ordinal);
        // What is not read does not count.
        Assert.True(CelConditions.Shared.Evaluate("params.x == 1", new ConditionScope { Params = """{"x":1}""", Inputs = [new("a", big)] }).Value);
    }

    [Fact]
    public void A_condition_that_is_not_a_boolean_is_an_error()
    {
        Assert.Equal("the condition evaluated to a string, not a boolean", CelConditions.Shared.Evaluate("'yes'", new ConditionScope()).Error);
    }

    private sealed class CountingEvaluator(bool value) : IConditionEvaluator
    {
        public int Calls { get; private set; }

        public ConditionScope? LastScope { get; private set; }

        public ConditionResult Evaluate(string expression, ConditionScope scope)
        {
            Calls++;
            LastScope = scope;
            return ConditionResult.Of(value);
        }
    }
}
