using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Runs.Engine;

namespace Conveyor.Engine.Tests;

/// <summary>Which attempt a driver result answers: at most once per (step, attempt), and the original drivers' way.</summary>
public sealed class ResultMatchingTests
{
    /// <summary>Results against a run whose steps a and b are both in flight (first attempts).</summary>
    public static TheoryData<string, string?, int?, string, ApplyOutcome> Results => new()
    {
        { "the current attempt of a step", "a", 1, "d-a", ApplyOutcome.Applied },
        { "no attempt number: the current one", "a", null, "d-a", ApplyOutcome.Applied },
        { "an attempt that is not current", "a", 2, "d-a", ApplyOutcome.Stale },
        { "a step the run does not have", "zzz", 1, "d-a", ApplyOutcome.UnknownStep },
        { "a step of another driver", "a", 1, "d-b", ApplyOutcome.UnknownStep },
        { "no step, a driver of the run", null, null, "d-b", ApplyOutcome.Applied },
        { "no step, a driver the run does not use", null, null, "stranger", ApplyOutcome.UnknownStep },
    };

    [Theory]
    [MemberData(nameof(Results))]
    public void A_result_is_matched_to_its_attempt_or_refused(string what, string? step, int? attempt, string driver, ApplyOutcome outcome)
    {
        var h = new RunHarness(RunHarness.Pipeline("a b"));
        h.Start();
        h.Do(new ApplyResults([new DriverResultInput { Driver = driver, StepId = step, Attempt = attempt, Success = true }]), 1000);
        Assert.True(outcome == h.Outcome, $"{what}: {h.Outcome}");
        Assert.Equal(outcome == ApplyOutcome.Applied, h.Last!.Persist);
    }

    [Fact]
    public void The_same_result_twice_is_applied_once()
    {
        var h = new RunHarness(RunHarness.Pipeline("a b:a"));
        h.Start();
        Assert.Equal(["persist", "dispatch b#1", "arm none"], h.Result("a", 1000, data: """{"n":1}"""));
        Assert.Equal(ApplyOutcome.Applied, h.Outcome);
        var again = h.Result("a", 2000, data: """{"n":2}""");
        Assert.Equal(ApplyOutcome.Duplicate, h.Outcome);
        Assert.Empty(again);
        Assert.Equal("""{"n":1}""", h.Machine.Step("a").Output);
        Assert.Equal(1, h.Machine.Step("a").CompletionOrder);
    }

    [Fact]
    public void Several_results_in_one_batch_are_stored_by_one_write_each_with_its_outcome()
    {
        var h = new RunHarness(RunHarness.Pipeline("a b c d:a,b,c"));
        h.Start();
        var ok = new DriverResultInput { Driver = "d-a", StepId = "a", Attempt = 1, Success = true };
        var effects = h.Do(new ApplyResults([ok, ok, new DriverResultInput { Driver = "d-b", StepId = "b", Attempt = 1, Success = true }, new DriverResultInput { Driver = "d-c", StepId = "c", Attempt = 9 }]), 1000);
        Assert.Equal([ApplyOutcome.Applied, ApplyOutcome.Duplicate, ApplyOutcome.Applied, ApplyOutcome.Stale], h.Last!.Outcomes);
        Assert.Equal(["persist", "arm none"], effects);
    }

    [Fact]
    public void A_result_for_an_earlier_attempt_is_stale_once_the_retry_is_in_flight()
    {
        var h = new RunHarness(RunHarness.Pipeline("a/r2"));
        h.Start();
        h.Result("a", 1000, success: false);
        Assert.Equal(StepStatus.Retrying, h.Status("a"));
        h.Result("a", 1500, attempt: 1);
        Assert.Equal(ApplyOutcome.Duplicate, h.Outcome);
        h.Tick(2000);
        h.Result("a", 2500, attempt: 1);
        Assert.Equal(ApplyOutcome.Stale, h.Outcome);
        h.Result("a", 3000, attempt: 2);
        Assert.Equal(ApplyOutcome.Applied, h.Outcome);
    }

    [Fact]
    public void A_result_after_the_run_ended_is_stale()
    {
        var h = new RunHarness(RunHarness.Pipeline("a b"));
        h.Start();
        h.Do(new CancelRun("stop"), 500);
        h.Result("a", 1000);
        Assert.Equal(ApplyOutcome.Stale, h.Outcome);
        h.Result("b", 1000, original: true);
        Assert.Equal(ApplyOutcome.Duplicate, h.Outcome);
        Assert.Equal(RunStatus.Cancelled, h.Run.Status);
    }

    [Fact]
    public void An_original_driver_answers_its_oldest_delivery_first_by_stream_sequence()
    {
        // x and y share a driver; x fails and is retried, so its second attempt is delivered after y's first.
        var h = new RunHarness(RunHarness.Pipeline("x/@orig/r2 y/@orig"));
        h.Start();
        Assert.True(h.Sequence("x") < h.Sequence("y"));
        h.Result("x", 1000, success: false, original: true);
        Assert.Equal((StepStatus.Retrying, StepStatus.Dispatched), (h.Status("x"), h.Status("y")));
        h.Tick(2000);
        Assert.True(h.Sequence("y") < h.Sequence("x"));

        h.Result("x", 3000, original: true, data: """{"who":"first"}""");
        Assert.Equal((StepStatus.Dispatched, StepStatus.Succeeded), (h.Status("x"), h.Status("y")));
        h.Result("x", 4000, original: true);
        Assert.Equal(RunStatus.Succeeded, h.Run.Status);
        h.Result("x", 5000, original: true);
        Assert.Equal(ApplyOutcome.Duplicate, h.Outcome);
    }

    [Fact]
    public void An_unconfirmed_dispatch_counts_as_delivered_last_and_ties_go_by_declaration_order()
    {
        var h = new RunHarness(RunHarness.Pipeline("x/@orig y/@orig"));
        h.MissingDrivers.Add("orig");
        h.Start();
        Assert.Equal((0UL, 0UL), (h.Sequence("x"), h.Sequence("y")));
        h.Result("y", 1000, original: true);
        Assert.Equal((StepStatus.Succeeded, StepStatus.Dispatched), (h.Status("x"), h.Status("y")));
        // The result proves the dispatch arrived.
        Assert.True(h.Machine.Step("x").Current!.Published);
    }
}
