using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;

namespace Conveyor.Engine.Tests;

/// <summary>The DAG's rules as a table: a pipeline, what its drivers answer, and where every step and the run end.</summary>
public sealed class DagRuleTests
{
    public static TheoryData<string, string, FailurePolicy, string[], string, RunStatus> Rules => new()
    {
        { "chain runs in order", "a b:a c:b", FailurePolicy.FailFast, ["ok a", "ok b", "ok c"], "a=Succeeded b=Succeeded c=Succeeded", RunStatus.Succeeded },
        { "fan-out then fan-in", "a b:a c:a d:b,c", FailurePolicy.FailFast, ["ok a", "ok c", "ok b", "ok d"], "a=Succeeded b=Succeeded c=Succeeded d=Succeeded", RunStatus.Succeeded },
        { "fail-fast skips what follows", "a b:a c:b", FailurePolicy.FailFast, ["fail a"], "a=Failed b=Skipped c=Skipped", RunStatus.Failed },
        { "fail-fast cancels in-flight siblings", "a b c:a,b", FailurePolicy.FailFast, ["fail a"], "a=Failed b=Cancelled c=Skipped", RunStatus.Failed },
        { "continue runs what does not depend on the failure", "a b c:a d:b", FailurePolicy.Continue, ["fail a", "ok b", "ok d"], "a=Failed b=Succeeded c=Skipped d=Succeeded", RunStatus.Failed },
        { "skip propagates through the whole subgraph", "a b:a c:b d:c e", FailurePolicy.Continue, ["fail a", "ok e"], "a=Failed b=Skipped c=Skipped d=Skipped e=Succeeded", RunStatus.Failed },
        { "a diamond with a failed branch skips the join", "a b:a c:a d:b,c", FailurePolicy.Continue, ["ok a", "fail b", "ok c"], "a=Succeeded b=Failed c=Succeeded d=Skipped", RunStatus.Failed },
        { "allowFailure lets dependents run and the run succeed", "a/allow b:a", FailurePolicy.FailFast, ["fail a", "ok b"], "a=Failed b=Succeeded", RunStatus.Succeeded },
        { "allowFailure does not trigger fail-fast", "a/allow b c:b", FailurePolicy.FailFast, ["fail a", "ok b", "ok c"], "a=Failed b=Succeeded c=Succeeded", RunStatus.Succeeded },
        { "a failure after allowFailure still fails fast", "a/allow b c:a,b", FailurePolicy.FailFast, ["fail a", "fail b"], "a=Failed b=Failed c=Skipped", RunStatus.Failed },
    };

    [Theory]
    [MemberData(nameof(Rules))]
    public void Every_step_and_the_run_end_as_the_rules_say(string rule, string steps, FailurePolicy policy, string[] script, string statuses, RunStatus run)
    {
        var h = new RunHarness(RunHarness.Pipeline(steps, policy));
        h.Start();
        h.Script(script);
        Assert.True(statuses == h.Statuses(), $"{rule}: expected {statuses}, got {h.Statuses()}\n{string.Join('\n', h.Transcript)}");
        Assert.Equal(run, h.Run.Status);
        Assert.NotNull(h.Run.FinishedAt);
        Assert.Contains("stop-keepalive", h.Transcript[^1], StringComparison.Ordinal);
    }

    [Fact]
    public void A_chain_dispatches_one_step_at_a_time()
    {
        var h = new RunHarness(RunHarness.Pipeline("a b:a c:b"));
        Assert.Equal(["persist", "index", "dispatch a#1", "arm none"], h.Start());
        Assert.Equal(["persist", "dispatch b#1", "arm none"], h.Result("a", 1000));
        Assert.Equal(["persist", "dispatch c#1", "arm none"], h.Result("b", 2000));
        Assert.Equal(["persist", "index", "stop-keepalive"], h.Result("c", 3000));
        Assert.Equal(RunStatus.Succeeded, h.Run.Status);
    }

    [Fact]
    public void A_fan_out_goes_out_as_one_batch_in_declaration_order()
    {
        var h = new RunHarness(RunHarness.Pipeline("root d:root b:root c:root"));
        h.Start();
        Assert.Equal(["persist", "dispatch d#1", "dispatch b#1", "dispatch c#1", "arm none"], h.Result("root", 1000));
    }

    [Fact]
    public void A_fan_in_waits_for_every_dependency()
    {
        var h = new RunHarness(RunHarness.Pipeline("a b c join:a,b,c"));
        Assert.Equal(["persist", "index", "dispatch a#1", "dispatch b#1", "dispatch c#1", "arm none"], h.Start());
        Assert.DoesNotContain("dispatch join#1", h.Result("a", 1000));
        Assert.DoesNotContain("dispatch join#1", h.Result("c", 2000));
        Assert.Equal(StepStatus.Pending, h.Status("join"));
        Assert.Contains("dispatch join#1", h.Result("b", 3000));
    }

    [Fact]
    public void A_dependent_receives_the_outputs_of_its_succeeded_dependencies()
    {
        var h = new RunHarness(RunHarness.Pipeline("a b c:a,b"));
        h.Start();
        h.Result("a", 1000, data: """{"image":"x:1"}""");
        h.Result("b", 2000, data: null);
        var message = Grains.Runs.Engine.DispatchMessages.Build(h.Machine.Graph, h.Machine.Step("c"), 1, "{}", null);
        Assert.Equal("""{"image":"x:1"}""", Assert.Single(message.Inputs!).Value.GetRawText());
        Assert.Equal("process", message.Event);
    }

    [Fact]
    public void Fail_fast_names_the_failure_and_cancels_in_flight_attempts_with_its_reason()
    {
        var h = new RunHarness(RunHarness.Pipeline("a b c:a,b"));
        h.Start();
        Assert.Equal(["persist", "index", "cancel b#1", "stop-keepalive"], h.Result("a", 1000, success: false, message: "boom"));
        Assert.Equal("step a failed: boom", h.Run.Message);
        Assert.Equal("step a failed: boom", h.Machine.Step("b").Current!.Message);
        // The cancelled attempt's late result changes nothing.
        h.Result("b", 2000);
        Assert.Equal(ApplyOutcome.Stale, h.Outcome);
        Assert.Equal(StepStatus.Cancelled, h.Status("b"));
    }
}
