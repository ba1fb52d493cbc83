using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Runs.Engine;

namespace Conveyor.Engine.Tests;

/// <summary>Approval gates: wait without a driver until approved (the run goes on) or rejected or timed out (the step fails).</summary>
public sealed class ApprovalTests
{
    [Fact]
    public void An_approval_gate_holds_the_run_until_approved_and_records_who_and_when()
    {
        var h = new RunHarness(RunHarness.Pipeline("build gate:build/approval deploy:gate"));
        h.Start();
        Assert.Equal(["persist", "arm none"], h.Result("build", 1000));
        Assert.Equal(StepStatus.WaitingForApproval, h.Status("gate"));
        Assert.Equal(StepStatus.Pending, h.Status("deploy"));
        // Nothing is dispatched for the gate and the run waits however long it takes.
        Assert.DoesNotContain(h.Tick(3_600_000), l => l.StartsWith("dispatch", StringComparison.Ordinal));

        Assert.Equal(["persist", "dispatch deploy#1", "arm none"], h.Approve("gate", 3_601_000, comment: "ship it"));
        var gate = h.Machine.Step("gate");
        Assert.Equal(StepStatus.Succeeded, gate.Status);
        Assert.Equal(new ApprovalRecord { Approved = true, By = "k1", At = RunHarness.At(3_601_000), Comment = "ship it" }.At, gate.Approval!.At);
        Assert.Equal("k1", gate.Approval.By);
        Assert.True(gate.Approval.Approved);
        Assert.Equal("approved by k1: ship it", gate.Current!.Message);
        Assert.Contains(h.Reports, r => r is ApprovalReport { Decision: "approved" } a && a.Waited == TimeSpan.FromSeconds(3600));
        h.Result("deploy", 3_602_000);
        Assert.Equal(RunStatus.Succeeded, h.Run.Status);
    }

    [Fact]
    public void A_rejection_fails_the_gate_and_the_run()
    {
        var h = new RunHarness(RunHarness.Pipeline("build gate:build/approval deploy:gate"));
        h.Start();
        h.Result("build", 1000);
        Assert.Equal(["persist", "index", "stop-keepalive"], h.Approve("gate", 2000, approved: false, by: "k2", comment: "not today"));
        Assert.Equal("build=Succeeded gate=Failed deploy=Skipped", h.Statuses());
        Assert.False(h.Machine.Step("gate").Approval!.Approved);
        Assert.Equal(RunStatus.Failed, h.Run.Status);
        Assert.Equal("approval gate rejected by k2: not today", h.Run.Message);
    }

    [Fact]
    public void An_undecided_gate_fails_at_its_timeout()
    {
        var pipeline = RunHarness.Pipeline("gate/approval deploy:gate").With("gate", s => s.Timeout = TimeSpan.FromSeconds(30));
        var h = new RunHarness(pipeline);
        Assert.Equal(["persist", "index", "arm @30000"], h.Start());
        Assert.Equal(["persist", "index", "stop-keepalive"], h.Tick(30_000));
        Assert.Equal("gate=Failed deploy=Skipped", h.Statuses());
        Assert.Equal("no decision within 00:00:30", h.Machine.Step("gate").Current!.Message);
        Assert.Contains(h.Reports, r => r is ApprovalReport { Decision: "timedout" });
    }

    [Fact]
    public void A_gate_is_decided_once()
    {
        var h = new RunHarness(RunHarness.Pipeline("gate/approval deploy:gate"));
        h.Start();
        h.Approve("gate", 1000);
        h.Approve("gate", 2000, approved: false);
        Assert.Equal("step gate is Succeeded, not waiting for approval", h.Refusal);
        Assert.True(h.Machine.Step("gate").Approval!.Approved);
        h.Approve("deploy", 3000);
        Assert.Equal("step deploy is not an approval step", h.Refusal);
        h.Approve("nope", 3000);
        Assert.Equal($"run {RunHarness.RunId} has no step nope", h.Refusal);
    }

    [Fact]
    public void A_gate_survives_a_reload_with_its_timeout()
    {
        var pipeline = RunHarness.Pipeline("gate/approval").With("gate", s => s.Timeout = TimeSpan.FromSeconds(30));
        var h = new RunHarness(pipeline);
        h.Start();
        h.Reload();
        Assert.Equal(["arm @30000"], h.Tick(1000));
        h.Reload();
        h.Approve("gate", 2000);
        Assert.Equal(RunStatus.Succeeded, h.Run.Status);
    }
}
