using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;

namespace Conveyor.Engine.Tests;

/// <summary>Finally steps: run once every main step has ended, whatever the outcome; the run's status reflects the main steps.</summary>
public sealed class FinallyTests
{
    public static TheoryData<string, string, string[], string, RunStatus> Rules => new()
    {
        { "finally runs after success", "a b:a f/finally", ["ok a", "ok b", "ok f"], "a=Succeeded b=Succeeded f=Succeeded", RunStatus.Succeeded },
        { "finally runs after a failure, and the run still fails", "a b:a f/finally", ["fail a", "ok f"], "a=Failed b=Skipped f=Succeeded", RunStatus.Failed },
        { "finally steps form a chain of their own", "a f/finally g/finally", ["ok a", "ok f", "ok g"], "a=Succeeded f=Succeeded g=Succeeded", RunStatus.Succeeded },
        { "finally steps may form a DAG of their own", "a f/finally g:f/finally h:f/finally", ["fail a", "ok f", "ok h", "ok g"], "a=Failed f=Succeeded g=Succeeded h=Succeeded", RunStatus.Failed },
        { "a failed finally step fails a run whose main steps succeeded", "a f/finally", ["ok a", "fail f"], "a=Succeeded f=Failed", RunStatus.Failed },
        { "a finally step may fail with allowFailure", "a f/finally/allow", ["ok a", "fail f"], "a=Succeeded f=Failed", RunStatus.Succeeded },
        { "a failure of a finally step does not stop the others", "a f/finally g:f/finally h/finally", ["ok a", "fail f", "ok h"], "a=Succeeded f=Failed g=Skipped h=Succeeded", RunStatus.Failed },
    };

    [Theory]
    [MemberData(nameof(Rules))]
    public void Finally_steps_run_after_the_main_steps(string rule, string steps, string[] script, string statuses, RunStatus run)
    {
        var pipeline = RunHarness.Pipeline(steps);
        // The compact form gives every step its dependencies; finally steps without ':' are roots of their group.
        var h = new RunHarness(pipeline);
        h.Start();
        h.Script(script);
        Assert.True(statuses == h.Statuses(), $"{rule}: expected {statuses}, got {h.Statuses()}\n{string.Join('\n', h.Transcript)}");
        Assert.Equal(run, h.Run.Status);
    }

    [Fact]
    public void A_finally_step_waits_for_every_main_step_even_a_slow_one()
    {
        var h = new RunHarness(RunHarness.Pipeline("a b f/finally", FailurePolicy.Continue));
        Assert.Equal(["persist", "index", "dispatch a#1", "dispatch b#1", "arm none"], h.Start());
        Assert.Equal(["persist", "arm none"], h.Result("a", 1000, success: false));
        Assert.Equal(StepStatus.Pending, h.Status("f"));
        Assert.Equal(["persist", "dispatch f#1", "arm none"], h.Result("b", 2000));
    }

    [Fact]
    public void Fail_fast_cancels_the_main_steps_in_flight_then_runs_finally_and_keeps_the_failure_as_the_runs_message()
    {
        var h = new RunHarness(RunHarness.Pipeline("a b c:a f/finally"));
        h.Start();
        Assert.Equal(["persist", "cancel b#1", "dispatch f#1", "arm none"], h.Result("a", 1000, success: false, message: "boom"));
        Assert.Equal("a=Failed b=Cancelled c=Skipped f=Dispatched", h.Statuses());
        h.Result("f", 2000);
        Assert.Equal(RunStatus.Failed, h.Run.Status);
        Assert.Equal("step a failed: boom", h.Run.Message);
    }

    [Fact]
    public void A_finally_steps_condition_sees_what_the_main_steps_made_of_the_run()
    {
        var pipeline = RunHarness.Pipeline("a notify/finally cleanup/finally")
            .With("notify", s => s.When = "run.status == 'Failed'")
            .With("cleanup", s => s.When = "steps.a.status == 'Succeeded'");
        var h = new RunHarness(pipeline);
        h.Start();
        h.Result("a", 1000, success: false);
        Assert.Equal("a=Failed notify=Dispatched cleanup=Skipped", h.Statuses());

        var ok = new RunHarness(RunHarness.Pipeline("a notify/finally").With("notify", s => s.When = "run.status == 'Failed'"));
        ok.Start();
        ok.Result("a", 1000);
        Assert.Equal("a=Succeeded notify=Skipped", ok.Statuses());
        Assert.Equal(RunStatus.Succeeded, ok.Run.Status);
    }

    [Fact]
    public void A_cancelled_run_skips_its_finally_steps()
    {
        var h = new RunHarness(RunHarness.Pipeline("a f/finally"));
        h.Start();
        h.Do(new Grains.Runs.Engine.CancelRun("stop"), 1000);
        Assert.Equal("a=Cancelled f=Skipped", h.Statuses());
        Assert.Equal(SkipReason.RunEnded, h.Machine.Step("f").SkipReason);
        Assert.Equal(RunStatus.Cancelled, h.Run.Status);
    }

    [Fact]
    public void A_reloaded_run_still_holds_its_finally_steps_until_the_main_steps_end()
    {
        var h = new RunHarness(RunHarness.Pipeline("a b f/finally"));
        h.Start();
        h.Result("a", 1000);
        h.Reload();
        Assert.DoesNotContain("dispatch f#1", h.Tick(1500));
        Assert.Equal(StepStatus.Pending, h.Status("f"));
        Assert.Contains("dispatch f#1", h.Result("b", 2000));
    }
}
