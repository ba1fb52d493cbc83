using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Runs.Engine;

namespace Conveyor.Engine.Tests;

/// <summary>The run events feed's outbox: every run and step transition, numbered, once, in the write that made it.</summary>
public sealed class RunEventTests
{
    private static RunHarness Harness(PipelineSpec pipeline) => new(pipeline, new RunMachineOptions { EmitEvents = false, EmitRunEvents = true });

    [Fact]
    public void Every_transition_of_a_run_is_recorded_once_in_order()
    {
        var h = Harness(RunHarness.Pipeline("a b:a/r2 c:a").With("c", s => s.When = "false"));
        h.Start();
        h.Result("a", 1000);
        h.Result("b", 2000, success: false);
        h.Tick(3000);
        h.Result("b", 4000);
        Assert.Equal(
            [
                "run:Pending>Running", "a:Pending>Dispatched",
                "a:Dispatched>Succeeded", "b:Pending>Dispatched", "c:Pending>Skipped",
                "b:Dispatched>Retrying",
                "b:Retrying>Dispatched",
                "b:Dispatched>Succeeded", "run:Running>Succeeded",
            ],
            h.Transitions());
        var items = h.PublishedBatches.SelectMany(b => b.Items).ToList();
        Assert.Equal(Enumerable.Range(1, items.Count).Select(i => (long)i), items.Select(i => i.Sequence));
        Assert.All(h.PublishedBatches, b => Assert.Equal(b.First, b.Items[0].Sequence));
        Assert.Equal("condition 'false' is false", items.Single(i => i.Step == "c").Message);
        Assert.Empty(h.Run.EventOutbox);
    }

    [Fact]
    public void The_transitions_of_one_decision_are_one_batch()
    {
        var h = Harness(RunHarness.Pipeline("root x:root y:root z:root"));
        h.Start();
        h.Result("root", 1000);
        Assert.Equal(["root:Dispatched>Succeeded", "x:Pending>Dispatched", "y:Pending>Dispatched", "z:Pending>Dispatched"], h.PublishedBatches[^1].Items.Select(i => $"{i.Step}:{i.Previous}>{i.Status}"));
    }

    [Fact]
    public void Unpublished_batches_stay_in_the_outbox_across_a_reload_and_numbering_goes_on()
    {
        var h = Harness(RunHarness.Pipeline("a b:a"));
        // Decide without carrying out the effects (as a silo that dies before publishing).
        h.Machine.Apply(new StartRun(null), RunHarness.At(0));
        h.Machine.Apply(new DispatchesSettled([new DispatchReport("a", 1, 1, RunHarness.At(0))]), RunHarness.At(0));
        Assert.Single(h.Run.EventOutbox);
        h.Reload();
        h.Result("a", 1000);
        Assert.Equal(["run:Pending>Running", "a:Pending>Dispatched", "a:Dispatched>Succeeded", "b:Pending>Dispatched"], h.Transitions());
        Assert.Equal([1L, 2, 3, 4], h.PublishedBatches.SelectMany(b => b.Items).Select(i => i.Sequence));
    }

    [Fact]
    public void Pause_approval_and_matrix_transitions_are_in_the_feed()
    {
        var pipeline = RunHarness.Pipeline("gate/approval m:gate")
            .With("m", s => s.Matrix = new MatrixSpec { Axes = [new MatrixAxis { Name = "n", Values = ["1", "2"] }] });
        var h = Harness(pipeline);
        h.Start();
        h.Pause(100);
        h.Approve("gate", 200);
        h.Resume(300);
        Assert.Equal(
            [
                "run:Pending>Running", "gate:Pending>WaitingForApproval",
                "run:Running>Paused",
                "gate:WaitingForApproval>Succeeded",
                "run:Paused>Running", "m:Pending>Running", "m[0]:Pending>Dispatched", "m[1]:Pending>Dispatched",
            ],
            h.Transitions());
        Assert.Equal(RunStatus.Running, h.PublishedBatches[^1].Items[^1].RunStatus);
    }
}
