using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;

namespace Conveyor.Engine.Tests;

/// <summary>
/// Pause and resume: a paused run dispatches nothing new, in-flight steps finish and are recorded; resumed, it goes on.
/// Deadlines keep running while paused (run timeout, attempt timeouts); retries due meanwhile wait for the resume.
/// </summary>
public sealed class PauseTests
{
    [Fact]
    public void A_paused_run_records_what_finishes_but_dispatches_nothing_until_resumed()
    {
        var h = new RunHarness(RunHarness.Pipeline("a b c:a,b d:c"));
        h.Start();
        Assert.Equal(["persist", "index", "arm none"], h.Pause(500));
        Assert.Equal(RunStatus.Paused, h.Run.Status);
        Assert.Equal("k1", h.Run.PausedBy);

        Assert.Equal(["persist", "arm none"], h.Result("a", 1000));
        Assert.Equal(["persist", "arm none"], h.Result("b", 2000));
        Assert.Equal("a=Succeeded b=Succeeded c=Pending d=Pending", h.Statuses());
        Assert.DoesNotContain(h.Tick(5000), l => l.StartsWith("dispatch", StringComparison.Ordinal));

        Assert.Equal(["persist", "index", "dispatch c#1", "arm none"], h.Resume(6000));
        Assert.Equal(RunStatus.Running, h.Run.Status);
        h.Result("c", 7000);
        h.Result("d", 8000);
        Assert.Equal(RunStatus.Succeeded, h.Run.Status);
    }

    [Fact]
    public void Only_a_running_run_pauses_and_only_a_paused_one_resumes()
    {
        var h = new RunHarness(RunHarness.Pipeline("a"));
        h.Resume(0);
        Assert.Equal($"run {RunHarness.RunId} is Pending; only a Paused run can be resumed", h.Refusal);
        h.Pause(0);
        Assert.Equal($"run {RunHarness.RunId} is Pending; only a Running run can be paused", h.Refusal);
        h.Start();
        h.Pause(100);
        h.Pause(200);
        Assert.Equal($"run {RunHarness.RunId} is Paused; only a Running run can be paused", h.Refusal);
        h.Result("a", 1000);
        // Its last step finished while paused: nothing is left to hold, so the run ends.
        Assert.Equal(RunStatus.Succeeded, h.Run.Status);
    }

    [Fact]
    public void The_run_timeout_keeps_running_while_paused()
    {
        var h = new RunHarness(RunHarness.Pipeline("a b:a", timeout: TimeSpan.FromSeconds(10)));
        h.Start();
        Assert.Equal(["persist", "index", "arm @10000"], h.Pause(1000));
        Assert.Equal(["persist", "index", "cancel a#1", "stop-keepalive"], h.Tick(10_000));
        Assert.Equal(RunStatus.TimedOut, h.Run.Status);
    }

    [Fact]
    public void An_attempt_times_out_while_paused_and_its_retry_waits_for_the_resume()
    {
        var h = new RunHarness(RunHarness.Pipeline("a/r2/t5000"));
        h.Start();
        h.Pause(1000);
        // The attempt's deadline applies; its retry (due at 6000) is held while paused.
        Assert.Equal(["persist", "cancel a#1", "arm none"], h.Tick(5000));
        Assert.Equal(StepStatus.Retrying, h.Status("a"));
        Assert.DoesNotContain(h.Tick(6000), l => l.StartsWith("dispatch", StringComparison.Ordinal));
        Assert.Equal(["persist", "index", "dispatch a#2", "arm @14000"], h.Resume(9000));
    }

    [Fact]
    public void A_retry_not_yet_due_at_the_resume_is_dispatched_when_it_falls_due()
    {
        var h = new RunHarness(RunHarness.Pipeline("a/r2"));
        h.Start();
        h.Result("a", 1000, success: false);
        h.Pause(1500);
        Assert.Equal(["persist", "index", "arm @2000"], h.Resume(1800));
        Assert.Equal(["persist", "dispatch a#2", "arm none"], h.Tick(2000));
    }

    [Fact]
    public void A_paused_run_survives_a_reload_paused()
    {
        var h = new RunHarness(RunHarness.Pipeline("a b:a"));
        h.Start();
        h.Pause(500);
        h.Reload();
        h.Result("a", 1000);
        Assert.Equal(StepStatus.Pending, h.Status("b"));
        h.Reload();
        Assert.Contains("dispatch b#1", h.Resume(2000));
    }

    [Fact]
    public void A_paused_run_can_be_cancelled()
    {
        var h = new RunHarness(RunHarness.Pipeline("a b:a"));
        h.Start();
        h.Pause(500);
        Assert.Equal(["persist", "index", "cancel a#1", "stop-keepalive"], h.Do(new Grains.Runs.Engine.CancelRun("stop"), 1000));
        Assert.Equal(RunStatus.Cancelled, h.Run.Status);
    }

    [Fact]
    public void A_gate_can_be_approved_while_paused_and_its_dependent_waits_for_the_resume()
    {
        var h = new RunHarness(RunHarness.Pipeline("gate/approval deploy:gate"));
        h.Start();
        h.Pause(500);
        Assert.Equal(["persist", "arm none"], h.Approve("gate", 1000));
        Assert.Equal(StepStatus.Pending, h.Status("deploy"));
        Assert.Contains("dispatch deploy#1", h.Resume(2000));
    }
}
