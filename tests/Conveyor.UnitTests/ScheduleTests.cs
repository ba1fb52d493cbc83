using System.Globalization;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Triggers;
using Cronos;

namespace Conveyor.UnitTests;

/// <summary>
/// The occurrence arithmetic of schedules on fixed instants: time zones, daylight-saving transitions, and what a tick
/// fires after missed occurrences under each <see cref="MissedFirePolicy"/>.
/// </summary>
public sealed class ScheduleTests
{
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(30);

    private static CronExpression Cron(string text)
    {
        Assert.True(Schedules.TryParse(text, out var cron, out var error), error);
        return cron!;
    }

    private static TimeZoneInfo Zone(string id)
    {
        Assert.True(Schedules.TryFindZone(id, out var zone), id);
        return zone;
    }

    private static DateTimeOffset At(string utc) => DateTimeOffset.Parse(utc, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);

    private static string[] Utc(IEnumerable<DateTimeOffset> occurrences) =>
        [.. occurrences.Select(o => o.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture))];

    [Theory]
    [InlineData("UTC", "2025-06-02T02:00:00Z")]
    [InlineData("Europe/Berlin", "2025-06-02T00:00:00Z")]
    [InlineData("America/New_York", "2025-06-02T06:00:00Z")]
    [InlineData("Asia/Kolkata", "2025-06-01T20:30:00Z")]
    public void The_next_occurrence_of_a_daily_schedule_is_read_in_its_zone(string zone, string expected)
    {
        var next = Schedules.Next(Cron("0 2 * * *"), Zone(zone), At("2025-06-01T12:00:00Z"));
        Assert.Equal(At(expected), next);

        // And a tick after it fires exactly that occurrence.
        var tick = Schedules.Due(Cron("0 2 * * *"), Zone(zone), At("2025-06-01T12:00:00Z"), next!.Value.AddSeconds(1), Grace, MissedFirePolicy.FireOnce);
        Assert.Equal([expected], Utc(tick.Fire));
    }

    [Fact]
    public void The_same_local_time_moves_in_utc_with_daylight_saving_time()
    {
        var berlin = Zone("Europe/Berlin");
        Assert.Equal(At("2025-01-15T01:00:00Z"), Schedules.Next(Cron("0 2 * * *"), berlin, At("2025-01-14T12:00:00Z")));
        Assert.Equal(At("2025-07-15T00:00:00Z"), Schedules.Next(Cron("0 2 * * *"), berlin, At("2025-07-14T12:00:00Z")));
    }

    [Fact]
    public void A_local_time_skipped_by_the_spring_forward_fires_at_the_jump()
    {
        // Berlin, 2025-03-30: 02:00 CET becomes 03:00 CEST (01:00Z), so 02:30 does not exist that night.
        var cron = Cron("30 2 * * *");
        var berlin = Zone("Europe/Berlin");
        var tick = Schedules.Due(cron, berlin, At("2025-03-29T12:00:00Z"), At("2025-03-30T01:00:05Z"), Grace, MissedFirePolicy.Skip);
        Assert.Equal(["2025-03-30T01:00:00Z"], Utc(tick.Fire));
        Assert.Null(tick.LatestMissed);
        Assert.Equal(At("2025-03-31T00:30:00Z"), Schedules.Next(cron, berlin, tick.Latest!.Value));

        // New York, 2025-03-09: 02:00 EST becomes 03:00 EDT (07:00Z).
        Assert.Equal(At("2025-03-09T07:00:00Z"), Schedules.Next(cron, Zone("America/New_York"), At("2025-03-09T00:00:00Z")));
    }

    [Fact]
    public void A_local_time_repeated_by_the_fall_back_fires_once_but_an_interval_keeps_its_pace()
    {
        // Berlin, 2025-10-26: 03:00 CEST becomes 02:00 CET (01:00Z), so 02:00-03:00 local happens twice.
        var berlin = Zone("Europe/Berlin");
        var daily = Schedules.Due(Cron("30 2 * * *"), berlin, At("2025-10-25T12:00:00Z"), At("2025-10-26T03:00:00Z"), TimeSpan.FromDays(1), MissedFirePolicy.FireOnce);
        Assert.Equal(["2025-10-26T00:30:00Z"], Utc(daily.Fire));

        var everyHalfHour = Schedules.Due(Cron("*/30 * * * *"), berlin, At("2025-10-25T23:45:00Z"), At("2025-10-26T02:00:00Z"), TimeSpan.FromDays(1), MissedFirePolicy.FireOnce);
        Assert.Equal(["2025-10-26T00:00:00Z", "2025-10-26T00:30:00Z", "2025-10-26T01:00:00Z", "2025-10-26T01:30:00Z", "2025-10-26T02:00:00Z"], Utc(everyHalfHour.Fire));
    }

    [Fact]
    public void After_missed_occurrences_fire_once_fires_the_latest_missed_one_then_every_on_time_one()
    {
        // Every 10 s; the last fire was at 00:00:00 and the tick runs at 00:01:05: 00:00:10-00:00:30 are more than
        // 30 s late (missed), 00:00:40-00:01:00 are on time.
        var tick = Schedules.Due(Cron("*/10 * * * * *"), TimeZoneInfo.Utc, At("2025-01-01T00:00:00Z"), At("2025-01-01T00:01:05Z"), Grace, MissedFirePolicy.FireOnce);
        Assert.Equal(["2025-01-01T00:00:30Z", "2025-01-01T00:00:40Z", "2025-01-01T00:00:50Z", "2025-01-01T00:01:00Z"], Utc(tick.Fire));
        Assert.Equal(At("2025-01-01T00:00:30Z"), tick.LatestMissed);
        Assert.Equal(At("2025-01-01T00:01:00Z"), tick.Latest);
    }

    [Fact]
    public void After_missed_occurrences_skip_fires_only_the_on_time_ones()
    {
        var tick = Schedules.Due(Cron("*/10 * * * * *"), TimeZoneInfo.Utc, At("2025-01-01T00:00:00Z"), At("2025-01-01T00:01:05Z"), Grace, MissedFirePolicy.Skip);
        Assert.Equal(["2025-01-01T00:00:40Z", "2025-01-01T00:00:50Z", "2025-01-01T00:01:00Z"], Utc(tick.Fire));
        Assert.Equal(At("2025-01-01T00:00:30Z"), tick.LatestMissed);
        Assert.Equal(At("2025-01-01T00:01:00Z"), tick.Latest);
    }

    [Fact]
    public void After_a_long_outage_fire_once_fires_one_run_and_skip_none_but_both_record_the_latest_occurrence()
    {
        // Every 5 minutes, six weeks without a silo; the tick runs 2 minutes after the latest occurrence.
        var cron = Cron("*/5 * * * *");
        var last = At("2025-01-01T00:00:00Z");
        var now = At("2025-02-10T10:02:00Z");
        var fireOnce = Schedules.Due(cron, TimeZoneInfo.Utc, last, now, Grace, MissedFirePolicy.FireOnce);
        Assert.Equal(["2025-02-10T10:00:00Z"], Utc(fireOnce.Fire));
        var skip = Schedules.Due(cron, TimeZoneInfo.Utc, last, now, Grace, MissedFirePolicy.Skip);
        Assert.Empty(skip.Fire);
        Assert.Equal(At("2025-02-10T10:00:00Z"), skip.Latest);
        Assert.Equal(At("2025-02-10T10:00:00Z"), skip.LatestMissed);
    }

    [Fact]
    public void A_tick_late_by_more_than_a_period_but_within_the_grace_fires_every_occurrence_it_passed()
    {
        var tick = Schedules.Due(Cron("*/2 * * * * *"), TimeZoneInfo.Utc, At("2025-01-01T00:00:00Z"), At("2025-01-01T00:00:05Z"), Grace, MissedFirePolicy.Skip);
        Assert.Equal(["2025-01-01T00:00:02Z", "2025-01-01T00:00:04Z"], Utc(tick.Fire));
        Assert.Null(tick.LatestMissed);
    }

    [Fact]
    public void An_occurrence_exactly_the_grace_old_is_on_time_and_one_a_tick_older_is_missed()
    {
        var cron = Cron("*/10 * * * * *");
        var onTime = Schedules.Due(cron, TimeZoneInfo.Utc, At("2025-01-01T00:00:05Z"), At("2025-01-01T00:00:40Z"), Grace, MissedFirePolicy.Skip);
        Assert.Equal(["2025-01-01T00:00:10Z", "2025-01-01T00:00:20Z", "2025-01-01T00:00:30Z", "2025-01-01T00:00:40Z"], Utc(onTime.Fire));
        Assert.Null(onTime.LatestMissed);

        var late = Schedules.Due(cron, TimeZoneInfo.Utc, At("2025-01-01T00:00:05Z"), At("2025-01-01T00:00:41Z"), Grace, MissedFirePolicy.Skip);
        Assert.Equal(At("2025-01-01T00:00:10Z"), late.LatestMissed);
        Assert.DoesNotContain("2025-01-01T00:00:10Z", Utc(late.Fire));
    }

    [Fact]
    public void Nothing_is_due_before_the_next_occurrence_and_the_last_fired_one_never_fires_again()
    {
        var cron = Cron("0 * * * *");
        var before = Schedules.Due(cron, TimeZoneInfo.Utc, At("2025-01-01T10:00:00Z"), At("2025-01-01T10:59:59Z"), Grace, MissedFirePolicy.FireOnce);
        Assert.Empty(before.Fire);
        Assert.Null(before.Latest);
        var again = Schedules.Due(cron, TimeZoneInfo.Utc, At("2025-01-01T10:00:00Z"), At("2025-01-01T10:00:00Z"), Grace, MissedFirePolicy.FireOnce);
        Assert.Empty(again.Fire);
    }

    [Theory]
    [InlineData("*/5 * * * *", true)]
    [InlineData("*/2 * * * * *", true)]
    [InlineData("61 * * * *", false)]
    [InlineData("* * *", false)]
    [InlineData("", false)]
    public void Cron_expressions_have_five_fields_or_six_with_seconds(string text, bool valid) =>
        Assert.Equal(valid, Schedules.TryParse(text, out _, out _));

    [Fact]
    public void Unknown_time_zones_are_not_found()
    {
        Assert.False(Schedules.TryFindZone("Mars/Olympus_Mons", out _));
        Assert.True(Schedules.TryFindZone("UTC", out var utc));
        Assert.Equal(TimeZoneInfo.Utc, utc);
    }
}
