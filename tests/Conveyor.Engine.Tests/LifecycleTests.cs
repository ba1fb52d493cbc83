using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Runs.Engine;

namespace Conveyor.Engine.Tests;

/// <summary>A run as a whole: start and admission, cancel, supersession, retry from failure, keepalive, reconnects.</summary>
public sealed class LifecycleTests
{
    [Fact]
    public void Cancel_cancels_in_flight_attempts_skips_the_rest_and_refuses_a_second_time()
    {
        var h = new RunHarness(RunHarness.Pipeline("a b c:a,b"));
        h.Start();
        h.Result("a", 1000);
        Assert.Equal(["persist", "index", "cancel b#1", "stop-keepalive"], h.Do(new CancelRun("  "), 2000));
        Assert.Equal(("cancelled", RunStatus.Cancelled), (h.Run.Message, h.Run.Status));
        Assert.Equal("a=Succeeded b=Cancelled c=Skipped", h.Statuses());
        Assert.Equal("cancelled", h.Machine.Step("b").Current!.Message);

        h.Do(new CancelRun("again"), 3000);
        Assert.Equal($"run {RunHarness.RunId} already ended Cancelled; only a Pending, Queued or Running run can be cancelled", h.Last!.Refusal);
        Assert.False(h.Last.Persist);
        Assert.Equal("cancelled", h.Run.Message);
    }

    [Fact]
    public void Retry_from_failure_reruns_what_did_not_succeed_and_keeps_the_outputs_of_what_did()
    {
        var h = new RunHarness(RunHarness.Pipeline("a b:a/r2 c:b"));
        h.Start();
        h.Result("a", 1000, data: """{"image":"x:1"}""");
        h.Result("b", 2000, success: false);
        h.Tick(3000);
        h.Result("b", 4000, success: false);
        Assert.Equal((RunStatus.Failed, "a=Succeeded b=Failed c=Skipped"), (h.Run.Status, h.Statuses()));

        Assert.Equal(["before register-keepalive", "persist", "index", "dispatch b#3", "arm none"], h.Do(new RetryRun("00-trace-span-01"), 10_000));
        Assert.Equal((2, "00-trace-span-01", ""), (h.Run.RunAttempt, h.Run.TraceParent, h.Run.Message));
        Assert.Null(h.Run.FinishedAt);
        // b has a fresh budget: one failure is retried again.
        Assert.Equal(["persist", "arm @12000"], h.Result("b", 11_000, success: false));
        h.Tick(12_000);
        h.Result("b", 13_000, data: """{"ok":true}""");
        var c = DispatchMessages.Build(h.Machine.Graph, h.Machine.Step("c"), 1, "{}", null);
        h.Result("c", 14_000);
        Assert.Equal(RunStatus.Succeeded, h.Run.Status);
        Assert.Equal("""{"image":"x:1"}""", h.Machine.Step("a").Output);
        Assert.Single(h.Machine.Step("a").Attempts);
        Assert.Equal(4, h.Machine.Step("b").Attempts.Count);
        Assert.Equal(RunStatus.Succeeded, h.Run.Status);
        Assert.Equal("b", Assert.Single(c.Inputs!).Key);
    }

    [Theory]
    [InlineData(RunStatus.Running)]
    [InlineData(RunStatus.Succeeded)]
    public void Retry_is_refused_unless_the_run_failed_was_cancelled_or_timed_out(RunStatus status)
    {
        var h = new RunHarness(RunHarness.Pipeline("a"));
        h.Start();
        if (status == RunStatus.Succeeded)
        {
            h.Result("a", 1000);
        }

        h.Do(new RetryRun(null), 2000);
        Assert.Equal($"run {RunHarness.RunId} is {status}; only a Failed, Cancelled or TimedOut run can be retried", h.Last!.Refusal);
        Assert.Equal(1, h.Run.RunAttempt);
    }

    [Fact]
    public void A_limited_run_is_stored_queued_before_it_asks_for_a_slot_and_starts_when_granted()
    {
        var h = new RunHarness(RunHarness.Pipeline("a", concurrency: 1));
        Assert.Equal(["persist", "index", "acquire default/p"], h.Start());
        Assert.Equal((RunStatus.Queued, "default/p"), (h.Run.Status, h.Run.AdmissionKey));
        Assert.Null(h.Run.StartedAt);
        var request = Assert.IsType<AcquireSlot>(h.Last!.Effects[^1]).Request;
        Assert.Equal((RunHarness.RunId, "p", 1, (int?)null), (request.RunId, request.Pipeline, request.PipelineLimit, request.NamespaceLimit));

        Assert.Equal(["persist", "index", "dispatch a#1", "arm none"], h.Do(SlotGranted.Instance, 5000));
        Assert.Equal(RunHarness.At(5000), h.Run.StartedAt);
        Assert.Equal(["persist", "index", "release default/p", "stop-keepalive"], h.Result("a", 6000));
    }

    [Fact]
    public void A_namespace_limit_queues_every_run_of_the_namespace_in_one_queue()
    {
        var h = new RunHarness(RunHarness.Pipeline("a"), RunHarness.WithFlow(namespaceLimit: 2), ns: "team");
        Assert.Equal(["persist", "index", "acquire team"], h.Start());
        Assert.Equal(2, Assert.IsType<AcquireSlot>(h.Last!.Effects[^1]).Request.NamespaceLimit);
    }

    [Fact]
    public void A_queued_run_superseded_by_a_newer_one_is_cancelled_and_a_late_slot_is_given_back()
    {
        var h = new RunHarness(RunHarness.Pipeline("a", concurrency: 1));
        h.Start();
        var by = Guid.Parse("00000000-0000-0000-0000-0000000000bb");
        Assert.Equal(["persist", "index", "release default/p", "stop-keepalive"], h.Do(new Superseded(by), 1000));
        Assert.Equal($"superseded by run {by}", h.Run.Message);
        Assert.Equal(["release default/p"], h.Do(SlotGranted.Instance, 2000));
        Assert.Empty(h.Do(new Superseded(by), 3000));
    }

    [Fact]
    public void The_keepalive_of_a_queued_run_asks_its_queue_again()
    {
        var h = new RunHarness(RunHarness.Pipeline("a", concurrency: 1));
        h.Start();
        Assert.Equal(["acquire default/p"], h.Do(KeepAliveTick.Instance, 60_000));
    }

    [Fact]
    public void A_prepared_run_waits_for_its_commit_then_asks_its_resource_and_starts_if_the_resource_names_it()
    {
        var h = new RunHarness(RunHarness.Pipeline("a"));
        Assert.Equal(["persist"], h.Do(PrepareRun.Instance, 0));
        Assert.Empty(h.Do(KeepAliveTick.Instance, 29_999));
        Assert.Equal(["check-commit default/app/web"], h.Do(KeepAliveTick.Instance, 30_000));
        Assert.Equal(["persist", "index", "dispatch a#1", "arm none"], h.Do(new CommitChecked(true, RunHarness.RunId, null), 30_001));
        Assert.True(h.Run.Committed);
        Assert.Empty(h.Start(30_002));
    }

    [Theory]
    [InlineData(false, null)]
    [InlineData(true, "00000000-0000-0000-0000-0000000000cc")]
    public void A_prepared_run_whose_resource_never_committed_it_gives_up(bool stored, string? lastRun)
    {
        var h = new RunHarness(RunHarness.Pipeline("a b:a"));
        h.Do(PrepareRun.Instance, 0);
        Assert.Equal(["persist", "index", "stop-keepalive"], h.Do(new CommitChecked(stored, lastRun is null ? null : Guid.Parse(lastRun), null), 30_000));
        Assert.Equal((RunStatus.Cancelled, "the resource that started this run was never stored"), (h.Run.Status, h.Run.Message));
        Assert.Equal("a=Skipped b=Skipped", h.Statuses());
    }

    [Fact]
    public void The_keepalive_of_an_ended_run_finishes_its_upkeep_and_stops()
    {
        var h = new RunHarness(RunHarness.Pipeline("a", concurrency: 1));
        h.Start();
        h.Do(SlotGranted.Instance, 1);
        h.Result("a", 1000);
        // As if the index write had been lost: the keepalive files the run again before releasing and stopping.
        h.Run.IndexedStatus = RunStatus.Running;
        Assert.Equal(["index", "release default/p", "stop-keepalive"], h.Do(KeepAliveTick.Instance, 60_000));
    }

    [Fact]
    public void A_step_whose_driver_has_no_consumer_waits_and_is_dispatched_again_when_its_timer_fires()
    {
        var h = new RunHarness(RunHarness.Pipeline("a/t60000"));
        h.MissingDrivers.Add("d-a");
        // The driver wait interval (1 s) comes before the attempt deadline.
        Assert.Equal(["persist", "index", "dispatch a#1", "arm @1000"], h.Start());
        Assert.False(h.Machine.Step("a").Current!.Published);
        Assert.Equal(["dispatch a#1", "arm @2000"], h.Tick(1000));
        h.MissingDrivers.Clear();
        Assert.Equal(["dispatch a#1", "arm @60000"], h.Tick(2000));
        Assert.True(h.Machine.Step("a").Current!.Published);
        Assert.Equal(RunHarness.At(2000), h.Machine.Step("a").Current!.PublishedAt);
    }

    [Fact]
    public void After_a_reconnect_dispatches_confirmed_within_the_dedup_window_go_out_again_older_ones_do_not()
    {
        var h = new RunHarness(RunHarness.Pipeline("old fresh:old2 old2"));
        h.Start();
        h.Result("old2", 1000);
        var window = (long)h.Options.RepublishWindow.TotalMilliseconds;
        h.Do(Reconnected.Instance, 500 + window);
        // "old" was confirmed at 0, "fresh" at 1000: only the latter is within the window.
        Assert.Equal(["dispatch fresh#1", "arm none"], h.Tick(500 + window));
    }
}
