using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Runs.Engine;

namespace Conveyor.Engine.Tests;

/// <summary>Retry budgets, backoff with a fixed jitter draw, attempt and run timeouts — with time as an argument.</summary>
public sealed class RetryAndTimeoutTests
{
    public static TheoryData<double, double, double, double, double, int, double> Delays => new()
    {
        // initial ms, multiplier, max ms, jitter, draw, attempts used → delay ms
        { 1000, 2, 60_000, 0, 0.5, 1, 1000 },
        { 1000, 2, 60_000, 0, 0.5, 2, 2000 },
        { 1000, 2, 60_000, 0, 0.5, 3, 4000 },
        { 1000, 2, 60_000, 0, 0.5, 0, 1000 },
        { 1000, 10, 5000, 0, 0.5, 3, 5000 },
        { 1000, 2, 60_000, 0.2, 0, 1, 800 },
        { 1000, 2, 60_000, 0.2, 0.75, 1, 1100 },
        { 1000, 2, 60_000, 0.2, 1, 1, 1200 },
        { 1000, 1, 60_000, 1, 0, 4, 0 },
    };

    [Theory]
    [MemberData(nameof(Delays))]
    public void Backoff_is_exponential_capped_and_moved_by_the_jitter_draw(double initial, double multiplier, double max, double jitter, double draw, int used, double expected)
    {
        var policy = new RetryPolicy { InitialDelay = TimeSpan.FromMilliseconds(initial), Multiplier = multiplier, MaxDelay = TimeSpan.FromMilliseconds(max), Jitter = jitter };
        Assert.Equal(expected, Backoff.Delay(policy, used, draw).TotalMilliseconds, precision: 6);
    }

    public static TheoryData<int, int, StepStatus, int> Budgets => new()
    {
        // max attempts, failures before a success (a success follows only while the budget lasts) → status, attempts
        { 1, 1, StepStatus.Failed, 1 },
        { 3, 2, StepStatus.Succeeded, 3 },
        { 3, 3, StepStatus.Failed, 3 },
        { 3, 5, StepStatus.Failed, 3 },
        { 2, 0, StepStatus.Succeeded, 1 },
    };

    [Theory]
    [MemberData(nameof(Budgets))]
    public void A_failed_attempt_is_retried_while_the_budget_lasts_each_after_its_backoff(int maxAttempts, int failures, StepStatus status, int attempts)
    {
        var h = new RunHarness(RunHarness.Pipeline($"a/r{maxAttempts}"));
        h.Start();
        long now = 0;
        for (var n = 1; n <= attempts; n++)
        {
            now += 100;
            if (n <= failures)
            {
                var effects = h.Result("a", now, success: false);
                if (n == maxAttempts)
                {
                    break;
                }

                // 1 s, then doubling: the next attempt is due exactly then, and not a moment before.
                var due = now + (1000L << (n - 1));
                Assert.Equal(RunHarness.At(due), h.Machine.Step("a").NextAttemptAt);
                Assert.Equal(["persist", $"arm @{due}"], effects);
                Assert.Equal(["arm @" + due], h.Tick(due - 1));
                Assert.Equal(["persist", $"dispatch a#{n + 1}", "arm none"], h.Tick(due));
                now = due;
            }
            else
            {
                h.Result("a", now);
            }
        }

        Assert.Equal(status, h.Status("a"));
        Assert.Equal(attempts, h.Machine.Step("a").Attempts.Count);
        Assert.Equal(status == StepStatus.Succeeded ? RunStatus.Succeeded : RunStatus.Failed, h.Run.Status);
    }

    /// <summary>The example of docs/concepts/engine.md.</summary>
    [Fact]
    public void A_failed_step_is_retried_after_its_backoff()
    {
        var h = new RunHarness(RunHarness.Pipeline("build test:build/r2"));
        Assert.Equal(["persist", "index", "dispatch build#1", "arm none"], h.Start());
        h.Result("build", 1000);
        Assert.Equal(["persist", "arm @3000"], h.Result("test", 2000, success: false));
        Assert.Equal(["persist", "dispatch test#2", "arm none"], h.Tick(3000));
    }

    [Fact]
    public void The_pipeline_retry_policy_applies_to_steps_without_their_own_with_the_jitter_drawn()
    {
        var pipeline = RunHarness.Pipeline("a b:a");
        pipeline.Retry = new RetryPolicy { MaxAttempts = 2, InitialDelay = TimeSpan.FromSeconds(2), Jitter = 0.5 };
        var h = new RunHarness(pipeline);
        h.QueueJitter(0.9);
        h.Start();
        // 2 s × (1 + 0.5 × (2 × 0.9 − 1)) = 2.8 s
        Assert.Equal(["persist", "arm @3800"], h.Result("a", 1000, success: false));
        Assert.Equal(RunHarness.At(3800), h.Machine.Step("a").NextAttemptAt);
    }

    [Fact]
    public void An_attempt_that_outlives_its_timeout_ends_timed_out_and_its_driver_is_told_to_stop()
    {
        var h = new RunHarness(RunHarness.Pipeline("a/t5000 b:a"));
        Assert.Equal(["persist", "index", "dispatch a#1", "arm @5000"], h.Start());
        Assert.Equal(["arm @5000"], h.Tick(4999));
        Assert.Equal(["persist", "index", "cancel a#1", "stop-keepalive"], h.Tick(5000));
        var attempt = h.Machine.Step("a").Current!;
        Assert.True(attempt.TimedOut);
        Assert.Equal(false, attempt.Success);
        Assert.Equal("attempt 1 timed out after 00:00:05", attempt.Message);
        Assert.Equal("a=TimedOut b=Skipped", h.Statuses());
        Assert.Equal(RunStatus.Failed, h.Run.Status);
    }

    [Fact]
    public void A_timed_out_attempt_is_retried_like_a_failed_one()
    {
        var h = new RunHarness(RunHarness.Pipeline("a/t5000/r2"));
        h.Start();
        Assert.Equal(["persist", "cancel a#1", "arm @6000"], h.Tick(5000));
        Assert.Equal(["persist", "dispatch a#2", "arm @11000"], h.Tick(6000));
        h.Result("a", 7000);
        Assert.Equal(RunStatus.Succeeded, h.Run.Status);
    }

    [Fact]
    public void A_run_that_outlives_its_timeout_ends_timed_out_cancelling_what_is_in_flight()
    {
        var h = new RunHarness(RunHarness.Pipeline("a b:a c:a/t3000", timeout: TimeSpan.FromSeconds(10)));
        Assert.Equal(["persist", "index", "dispatch a#1", "arm @10000"], h.Start());
        Assert.Equal(["persist", "dispatch b#1", "dispatch c#1", "arm @4000"], h.Result("a", 1000));
        h.Result("c", 2000);
        Assert.Equal(["arm @10000"], h.Tick(4000));
        Assert.Equal(["persist", "index", "cancel b#1", "stop-keepalive"], h.Tick(10_000));
        Assert.Equal(RunStatus.TimedOut, h.Run.Status);
        Assert.Equal("run timed out after 00:00:10", h.Run.Message);
        Assert.Equal("a=Succeeded b=Cancelled c=Succeeded", h.Statuses());
    }

    [Fact]
    public void A_retry_due_after_the_run_deadline_never_happens()
    {
        var h = new RunHarness(RunHarness.Pipeline("a/r3", timeout: TimeSpan.FromSeconds(2)));
        h.Start();
        Assert.Equal(["persist", "arm @1500"], h.Result("a", 500, success: false));
        h.Result("a", 1500 - 1, success: false, attempt: 1);
        h.Tick(1500);
        Assert.Equal(["persist", "arm @2000"], h.Result("a", 1800, success: false));
        Assert.Equal(["persist", "index", "stop-keepalive"], h.Tick(2000));
        Assert.Equal((RunStatus.TimedOut, StepStatus.Skipped), (h.Run.Status, h.Status("a")));
    }
}
