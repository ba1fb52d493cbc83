using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Runs.Engine;

namespace Conveyor.Engine.Tests;

/// <summary>
/// Nothing hangs for ever: the default attempt timeout, heartbeat leases, oversize dispatches and oversize result data —
/// and nothing is kept for ever: a finished run's expiry.
/// </summary>
public sealed class LeaseAndLimitTests
{
    private static readonly TimeSpan Hour = TimeSpan.FromHours(1);

    private static RunMachineOptions Defaults(TimeSpan? attemptTimeout = null, TimeSpan? lease = null, int? maxData = null, RetentionDefaults? retention = null) => new()
    {
        EmitEvents = false,
        EmitRunEvents = false,
        DefaultAttemptTimeout = attemptTimeout ?? Hour,
        HeartbeatLease = lease ?? TimeSpan.FromMinutes(5),
        MaxResultDataBytes = maxData,
        Retention = retention ?? RetentionDefaults.KeepForever,
    };

    [Fact]
    public void A_step_without_a_timeout_gets_the_default_attempt_timeout_and_is_retried_when_it_passes()
    {
        var h = new RunHarness(RunHarness.Pipeline("a/r2"), Defaults());
        Assert.Equal(["persist", "index", "dispatch a#1", "arm @3600000"], h.Start());
        Assert.Equal(["persist", "cancel a#1", "arm @3601000"], h.Tick(3_600_000));
        var attempt = h.Machine.Step("a").Attempts[0];
        Assert.True(attempt.TimedOut);
        Assert.Contains("Conveyor:Runs:DefaultAttemptTimeout", attempt.Message, StringComparison.Ordinal);
        Assert.Equal(["persist", "dispatch a#2", "arm @7201000"], h.Tick(3_601_000));

        // The first attempt's late result is stale: the retry's decides.
        h.Result("a", 3_602_000, attempt: 1);
        Assert.Equal(ApplyOutcome.Stale, h.Outcome);
        h.Result("a", 3_603_000);
        Assert.Equal(RunStatus.Succeeded, h.Run.Status);
    }

    [Fact]
    public void Without_a_default_attempt_timeout_a_step_without_one_waits_for_its_result()
    {
        var h = new RunHarness(RunHarness.Pipeline("a"), Defaults() with { DefaultAttemptTimeout = null });
        Assert.Equal(["persist", "index", "dispatch a#1", "arm none"], h.Start());
    }

    [Fact]
    public void A_steps_own_timeout_wins_over_the_default_and_a_heartbeat_does_not_extend_it()
    {
        var h = new RunHarness(RunHarness.Pipeline("a/t10000"), Defaults());
        Assert.Equal(["persist", "index", "dispatch a#1", "arm @10000"], h.Start());
        // The heartbeat shows the driver works on it (Running), but the step's own limit stays.
        Assert.Equal(["persist", "arm @10000"], h.Heartbeat("a", 5000));
        Assert.Equal(StepStatus.Running, h.Status("a"));
        Assert.Equal(RunHarness.At(10_000), h.Machine.Step("a").DeadlineAt);
        h.Tick(10_000);
        Assert.Equal(StepStatus.TimedOut, h.Status("a"));
        Assert.Equal("attempt 1 timed out after 00:00:10", h.Machine.Step("a").Attempts[0].Message);
    }

    [Fact]
    public void A_heartbeat_replaces_the_default_timeout_with_a_lease_that_later_heartbeats_renew()
    {
        var h = new RunHarness(RunHarness.Pipeline("a"), Defaults(lease: TimeSpan.FromSeconds(100)));
        h.Start();
        // First heartbeat: the lease starts now (100 s), shorter than the default hour — a dead driver is found sooner.
        Assert.Equal(["persist", "arm @110000"], h.Heartbeat("a", 10_000));
        Assert.Equal(StepStatus.Running, h.Status("a"));

        // Within a quarter of the lease nothing is stored: the lease would move by less than 25 s.
        Assert.Empty(h.Heartbeat("a", 30_000));
        Assert.Equal(RunHarness.At(110_000), h.Machine.Step("a").DeadlineAt);

        // 25 s later it moves, and is stored with the time of the heartbeat.
        Assert.Equal(["persist", "arm @135000"], h.Heartbeat("a", 35_000));
        Assert.Equal(RunHarness.At(35_000), h.Machine.Step("a").Current!.LastHeartbeatAt);

        // A live long step is never cut while heartbeats keep coming: hours later it still runs.
        for (long t = 60_000; t <= 3 * 3_600_000; t += 30_000)
        {
            h.Heartbeat("a", t);
            h.Tick(t);
        }

        Assert.Equal(StepStatus.Running, h.Status("a"));
        h.Result("a", 3 * 3_600_000 + 1000);
        Assert.Equal(RunStatus.Succeeded, h.Run.Status);
    }

    [Fact]
    public void When_heartbeats_stop_the_lease_expires_and_the_attempt_fails_naming_the_lease()
    {
        var h = new RunHarness(RunHarness.Pipeline("a/r2"), Defaults(lease: TimeSpan.FromSeconds(100)));
        h.Start();
        h.Heartbeat("a", 10_000);
        Assert.Equal(["persist", "cancel a#1", "arm @111000"], h.Tick(110_000));
        var attempt = h.Machine.Step("a").Attempts[0];
        Assert.True(attempt.TimedOut);
        Assert.Contains("sent no heartbeat since", attempt.Message, StringComparison.Ordinal);
        Assert.Contains("Conveyor:Runs:HeartbeatLease", attempt.Message, StringComparison.Ordinal);
        Assert.Equal(StepStatus.Retrying, h.Status("a"));
    }

    [Fact]
    public void Heartbeats_keep_an_attempt_alive_no_longer_than_the_maximum_attempt_duration()
    {
        var h = new RunHarness(RunHarness.Pipeline("a"), Defaults(lease: TimeSpan.FromSeconds(100)) with { MaxAttemptDuration = TimeSpan.FromSeconds(300) });
        h.Start();
        for (long t = 30_000; t < 300_000; t += 30_000)
        {
            h.Heartbeat("a", t);
            h.Tick(t);
        }

        Assert.Equal(RunHarness.At(300_000), h.Machine.Step("a").DeadlineAt);
        h.Tick(300_000);
        Assert.Equal(StepStatus.TimedOut, h.Status("a"));
        Assert.Contains("Conveyor:Runs:MaxAttemptDuration", h.Machine.Step("a").Attempts[0].Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(10, 100)]   // interval 10 s: the configured lease (100 s) is longer than three intervals
    [InlineData(60, 180)]   // interval 60 s: the lease is at least three intervals
    public void The_lease_is_at_least_three_heartbeat_intervals(int intervalSeconds, int leaseSeconds)
    {
        var h = new RunHarness(RunHarness.Pipeline("a"), Defaults(lease: TimeSpan.FromSeconds(100)));
        h.Start();
        h.Heartbeat("a", 0, interval: TimeSpan.FromSeconds(intervalSeconds));
        Assert.Equal(RunHarness.At(leaseSeconds * 1000L), h.Machine.Step("a").DeadlineAt);
    }

    public static TheoryData<string, int?> IgnoredHeartbeats => new()
    {
        // what the heartbeat names → ignored
        { "b", null },        // a step the run does not have
        { "a", 2 },           // an attempt that is not the current one
    };

    [Theory]
    [MemberData(nameof(IgnoredHeartbeats))]
    public void A_heartbeat_for_another_step_or_attempt_changes_nothing(string step, int? attempt)
    {
        var h = new RunHarness(RunHarness.Pipeline("a"), Defaults());
        h.Start();
        Assert.Empty(h.Do(new Heartbeat(step, attempt ?? 1, null), 1000));
        Assert.Equal(StepStatus.Dispatched, h.Status("a"));
    }

    [Fact]
    public void A_heartbeat_after_the_attempt_timed_out_does_not_revive_it()
    {
        var h = new RunHarness(RunHarness.Pipeline("a/r2"), Defaults(attemptTimeout: TimeSpan.FromSeconds(10)));
        h.Start();
        h.Tick(10_000);
        Assert.Empty(h.Heartbeat("a", 10_500, attempt: 1));
        Assert.Equal(StepStatus.Retrying, h.Status("a"));
    }

    [Fact]
    public void A_heartbeat_proves_a_dispatch_arrived_that_was_not_confirmed()
    {
        var h = new RunHarness(RunHarness.Pipeline("a"), Defaults());
        h.MissingDrivers.Add("d-a");
        h.Start();
        Assert.False(h.Machine.Step("a").Current!.Published);
        h.Heartbeat("a", 500);
        Assert.True(h.Machine.Step("a").Current!.Published);
        // Confirmed, so the timer no longer comes back every second to dispatch it again.
        Assert.Equal(["arm @300500"], h.Tick(1000)[^1..]);
    }

    [Fact]
    public void A_dispatch_too_large_for_the_server_fails_its_step_for_good_instead_of_waiting_for_a_driver()
    {
        var h = new RunHarness(RunHarness.Pipeline("a/r3 b:a"), Defaults());
        h.OversizeDrivers["d-a"] = "the dispatch is 2000000 bytes; the NATS server accepts at most 1048576";
        var effects = h.Start();
        Assert.Equal(["persist", "index", "dispatch a#1", "persist", "index", "release-or-stop"], Normalize(effects));
        Assert.Equal(RunStatus.Failed, h.Run.Status);
        Assert.Equal(StepStatus.Failed, h.Status("a"));
        Assert.Equal(StepStatus.Skipped, h.Status("b"));
        // Final: the retry budget (3) is not spent on a dispatch that can never go out.
        Assert.Single(h.Machine.Step("a").Attempts);
        Assert.Contains("accepts at most 1048576", h.Run.Message, StringComparison.Ordinal);
    }

    private static List<string> Normalize(List<string> effects) =>
        effects.Select(e => e is "stop-keepalive" ? "release-or-stop" : e).ToList();

    [Fact]
    public void Result_data_over_the_limit_fails_the_attempt_naming_the_limit_and_is_not_kept()
    {
        var h = new RunHarness(RunHarness.Pipeline("a/r2"), Defaults(maxData: 64));
        h.Start();
        h.Result("a", 1000, data: "\"" + new string('x', 100) + "\"", message: "built");
        var attempt = h.Machine.Step("a").Attempts[0];
        Assert.False(attempt.Success);
        Assert.Null(attempt.Data);
        Assert.Equal("result data of 102 bytes exceeds the limit of 64 bytes (Conveyor:Limits:MaxResultDataBytes); the driver said: built", attempt.Message);
        Assert.Equal(StepStatus.Retrying, h.Status("a"));

        // Data within the limit is applied as it is.
        h.Tick(2000);
        h.Result("a", 2500, data: "\"" + new string('x', 62) + "\"");
        Assert.Equal(StepStatus.Succeeded, h.Status("a"));
        Assert.NotNull(h.Machine.Step("a").Output);
    }

    public static TheoryData<string, string?, string, string?> Expiries => new()
    {
        // pipeline period, namespace period, run's namespace → expiry after the end (null: kept forever)
        { "none", null, "default", "30.00:00:00" },       // the engine's default
        { "7.00:00:00", null, "default", "7.00:00:00" },  // the pipeline's own
        { "none", "1.00:00:00", "team-a", "1.00:00:00" }, // the namespace's
        { "7.00:00:00", "1.00:00:00", "team-a", "7.00:00:00" }, // the pipeline wins over the namespace
        { "00:00:00", null, "default", null },            // the pipeline keeps its runs forever
        { "none", "00:00:00", "team-a", null },           // so does the namespace
    };

    [Theory]
    [MemberData(nameof(Expiries))]
    public void A_finished_run_expires_after_its_pipelines_else_its_namespaces_else_the_default_period(string pipelinePeriod, string? namespacePeriod, string ns, string? expected)
    {
        var pipeline = RunHarness.Pipeline("a");
        if (pipelinePeriod != "none")
        {
            pipeline.Retention = new RetentionSpec { Period = TimeSpan.Parse(pipelinePeriod, System.Globalization.CultureInfo.InvariantCulture) };
        }

        var namespaces = new Dictionary<string, TimeSpan>(StringComparer.Ordinal);
        if (namespacePeriod is not null)
        {
            namespaces["team-a"] = TimeSpan.Parse(namespacePeriod, System.Globalization.CultureInfo.InvariantCulture);
        }

        var h = new RunHarness(pipeline, Defaults(retention: new RetentionDefaults(TimeSpan.FromDays(30), namespaces)), ns: ns);
        h.Start();
        Assert.Null(h.Run.ExpiresAt);
        h.Result("a", 5000);
        Assert.Equal(expected is null ? null : RunHarness.At(5000) + TimeSpan.Parse(expected, System.Globalization.CultureInfo.InvariantCulture), h.Run.ExpiresAt);
        Assert.Equal(h.Run.ExpiresAt, h.Machine.Summary().ExpiresAt);
    }

    [Fact]
    public void A_retried_run_no_longer_expires_until_it_ends_again()
    {
        var pipeline = RunHarness.Pipeline("a");
        pipeline.Retention = new RetentionSpec { KeepLast = 10 };
        var h = new RunHarness(pipeline, Defaults(retention: new RetentionDefaults(TimeSpan.FromMinutes(1), new Dictionary<string, TimeSpan>())));
        h.Start();
        h.Result("a", 1000, success: false);
        Assert.Equal(RunHarness.At(61_000), h.Run.ExpiresAt);
        Assert.Equal(10, h.Machine.Summary().KeepLast);
        h.Do(new RetryRun(null), 2000);
        Assert.Null(h.Run.ExpiresAt);
        Assert.Null(h.Machine.Summary().KeepLast);
        h.Result("a", 3000);
        Assert.Equal(RunHarness.At(63_000), h.Run.ExpiresAt);
    }

    [Fact]
    public void A_cancelled_run_expires_too()
    {
        var h = new RunHarness(RunHarness.Pipeline("a"), Defaults(retention: new RetentionDefaults(TimeSpan.FromMinutes(1), new Dictionary<string, TimeSpan>())));
        h.Start();
        h.Do(new CancelRun("stop"), 1000);
        Assert.Equal(RunHarness.At(61_000), h.Run.ExpiresAt);
    }
}
