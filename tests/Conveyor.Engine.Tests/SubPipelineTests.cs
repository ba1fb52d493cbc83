using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Runs.Engine;

namespace Conveyor.Engine.Tests;

/// <summary>Sub-pipeline steps: start a child run, end as it ends; a child tells its parent, and a parent asks its children.</summary>
public sealed class SubPipelineTests
{
    [Fact]
    public void A_sub_pipeline_step_starts_its_child_and_succeeds_with_it()
    {
        var pipeline = RunHarness.Pipeline("build deploy:build/child=deploy-prod after:deploy").With("deploy", s => s.Params = """{"region":"eu"}""");
        var h = new RunHarness(pipeline, runParams: """{"version":"2"}""");
        h.Start();
        var decision = h.Result("build", 1000);
        Assert.Equal(["persist", "arm none", "start-child deploy"], decision);
        var start = Assert.IsType<StartChild>(h.Last!.Effects[^1]);
        Assert.Equal(RunIds.Child(RunHarness.RunId, "deploy", 1), start.ChildRunId);
        Assert.Equal("deploy-prod", start.Pipeline);
        Assert.Equal("""{"region":"eu","version":"2"}""", start.Params);
        Assert.Equal(StepStatus.Running, h.Status("deploy"));
        Assert.Equal(start.ChildRunId, h.Machine.Step("deploy").ChildRunId);

        Assert.Equal(["persist", "dispatch after#1", "arm none"], h.ChildEnded("deploy", 5000, outputs: """{"release":{"url":"x"}}"""));
        Assert.Equal("""{"release":{"url":"x"}}""", h.Machine.Step("deploy").Output);
        // Told again (the child's call and the keepalive's check): applied once.
        Assert.Same(RunDecision.None, h.Machine.Apply(new ChildEnded("deploy", start.ChildRunId, RunStatus.Failed, "", null), RunHarness.At(6000)));
        Assert.Equal(StepStatus.Succeeded, h.Status("deploy"));
    }

    [Fact]
    public void A_failed_child_fails_its_parents_step_and_the_parent()
    {
        var h = new RunHarness(RunHarness.Pipeline("deploy/child=deploy-prod after:deploy"));
        h.Start();
        Assert.Equal(["persist", "index", "stop-keepalive"], h.ChildEnded("deploy", 1000, RunStatus.Failed));
        Assert.Equal("deploy=Failed after=Skipped", h.Statuses());
        Assert.StartsWith($"step deploy failed: child run {h.Machine.Step("deploy").ChildRunId} Failed: child failed", h.Run.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Cancelling_the_parent_cancels_the_child()
    {
        var h = new RunHarness(RunHarness.Pipeline("deploy/child=deploy-prod"));
        h.Start();
        var child = h.Machine.Step("deploy").ChildRunId!.Value;
        Assert.Equal(["persist", "index", $"cancel-child {child}", "stop-keepalive"], h.Do(new CancelRun("stop"), 1000));
        Assert.Equal(StepStatus.Cancelled, h.Status("deploy"));
    }

    [Fact]
    public void A_child_that_outlives_its_steps_timeout_is_cancelled_and_the_step_times_out()
    {
        var h = new RunHarness(RunHarness.Pipeline("deploy/child=deploy-prod").With("deploy", s => s.Timeout = TimeSpan.FromSeconds(60)));
        Assert.Equal(["persist", "index", "arm @60000", "start-child deploy"], h.Start());
        var child = h.Machine.Step("deploy").ChildRunId!.Value;
        Assert.Equal(["persist", "index", $"cancel-child {child}", "stop-keepalive"], h.Tick(60_000));
        Assert.Equal(StepStatus.TimedOut, h.Status("deploy"));
    }

    [Fact]
    public void The_keepalive_asks_every_running_child()
    {
        var h = new RunHarness(RunHarness.Pipeline("a/child=p1 b/child=p2 c"));
        h.Start();
        Assert.Equal(["arm none", "check-child a", "check-child b"], h.KeepAlive(60_000));
    }

    [Fact]
    public void A_child_run_tells_its_parent_how_it_ended_with_its_outputs()
    {
        var parent = Guid.NewGuid();
        var h = new RunHarness(RunHarness.Pipeline("a b:a"), parent: parent, depth: 1);
        h.Start();
        h.Result("a", 1000, data: """{"x":1}""");
        Assert.Equal(["persist", "index", "notify-parent sub=Succeeded", "stop-keepalive"], h.Result("b", 2000));
        var notify = Assert.IsType<NotifyParent>(h.Last!.Effects[1]);
        Assert.Equal(parent, notify.ParentRunId);
        Assert.Equal(RunHarness.RunId, notify.Ended.ChildRunId);
        Assert.Equal("""{"a":{"x":1}}""", notify.Ended.Outputs);
    }

    [Fact]
    public void Sub_pipelines_nest_only_so_deep()
    {
        var h = new RunHarness(RunHarness.Pipeline("deploy/child=p"), depth: 5, parent: Guid.NewGuid());
        h.Start();
        Assert.Equal(StepStatus.Failed, h.Status("deploy"));
        Assert.Equal("sub-pipelines nest at most 5 deep; this run is 5 deep", h.Machine.Step("deploy").Reason);
    }

    [Fact]
    public void A_child_that_cannot_start_fails_the_step()
    {
        var h = new RunHarness(RunHarness.Pipeline("deploy/child=gone"));
        h.Start();
        h.Do(new ChildStartFailed("deploy", h.Machine.Step("deploy").ChildRunId!.Value, "pipeline gone not found"), 1000);
        Assert.Equal(StepStatus.Failed, h.Status("deploy"));
        Assert.Equal("step deploy failed: pipeline gone not found", h.Run.Message);
    }

    [Fact]
    public void A_retried_parent_starts_a_new_child_for_its_new_attempt()
    {
        var h = new RunHarness(RunHarness.Pipeline("deploy/child=p"));
        h.Start();
        var first = h.Machine.Step("deploy").ChildRunId!.Value;
        h.ChildEnded("deploy", 1000, RunStatus.Failed);
        Assert.Contains("start-child deploy", h.Do(new RetryRun(null), 2000));
        var second = h.Machine.Step("deploy").ChildRunId!.Value;
        Assert.NotEqual(first, second);
        Assert.Equal(RunIds.Child(RunHarness.RunId, "deploy", 2), second);
        // The first child's late news is about an earlier attempt.
        Assert.Same(RunDecision.None, h.Machine.Apply(new ChildEnded("deploy", first, RunStatus.Succeeded, "", null), RunHarness.At(3000)));
    }
}
