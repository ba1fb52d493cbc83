using Conveyor.Grains.Abstractions;
using Cronos;

namespace Conveyor.Grains.Triggers;

/// <summary>What one tick of a schedule does, as computed by <see cref="Schedules.Due"/>.</summary>
/// <param name="Fire">Occurrences to start runs for, oldest first: the catch-up (if any), then every on-time one.</param>
/// <param name="LatestMissed">The latest occurrence more than the grace period late, or null when none was missed.</param>
/// <param name="Latest">The latest occurrence in the window, to be stored as fired once <paramref name="Fire"/> has been fired; null when no occurrence is due.</param>
internal readonly record struct ScheduleTick(IReadOnlyList<DateTimeOffset> Fire, DateTimeOffset? LatestMissed, DateTimeOffset? Latest);

/// <summary>Cron parsing and the occurrence arithmetic shared by validation and the schedule grain.</summary>
internal static class Schedules
{
    /// <summary>Parses 5 fields (minute first) or 6 (seconds first); false with a message when invalid.</summary>
    public static bool TryParse(string? cron, out CronExpression? expression, out string error)
    {
        expression = null;
        error = "";
        if (string.IsNullOrWhiteSpace(cron))
        {
            error = "a cron expression is required (e.g. \"*/5 * * * *\", or 6 fields with seconds first)";
            return false;
        }

        var fields = cron.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length;
        var format = fields == 6 ? CronFormat.IncludeSeconds : CronFormat.Standard;
        if (!CronExpression.TryParse(cron.Trim(), format, out expression))
        {
            error = $"'{cron}' is not a cron expression (5 fields, or 6 with seconds first)";
            return false;
        }

        return true;
    }

    /// <summary>Finds a time zone by IANA or Windows id.</summary>
    public static bool TryFindZone(string id, out TimeZoneInfo zone)
    {
        zone = TimeZoneInfo.Utc;
        if (string.IsNullOrEmpty(id) || id is "UTC" or "Etc/UTC")
        {
            return true;
        }

        return TimeZoneInfo.TryFindSystemTimeZoneById(id, out zone!);
    }

    /// <summary>The first occurrence after <paramref name="after"/> (exclusive), read in <paramref name="zone"/>; null when there is none.</summary>
    public static DateTimeOffset? Next(CronExpression cron, TimeZoneInfo zone, DateTimeOffset after)
    {
        ArgumentNullException.ThrowIfNull(cron);
        return cron.GetNextOccurrence(after, zone);
    }

    /// <summary>
    /// The occurrences in (<paramref name="last"/>, <paramref name="now"/>] and what to do with them. An occurrence at
    /// most <paramref name="grace"/> old is on time and fires, each one; older ones are missed, and
    /// <see cref="MissedFirePolicy.FireOnce"/> fires the latest of them once (before the on-time ones) while
    /// <see cref="MissedFirePolicy.Skip"/> drops them all.
    /// </summary>
    public static ScheduleTick Due(CronExpression cron, TimeZoneInfo zone, DateTimeOffset last, DateTimeOffset now, TimeSpan grace, MissedFirePolicy policy)
    {
        ArgumentNullException.ThrowIfNull(cron);
        if (now <= last)
        {
            return new ScheduleTick([], null, null);
        }

        var threshold = now - grace;
        var onTime = threshold > last
            ? cron.GetOccurrences(threshold, now, zone, fromInclusive: true, toInclusive: true).ToList()
            : cron.GetOccurrences(last, now, zone, fromInclusive: false, toInclusive: true).ToList();
        var missed = threshold > last ? LatestBetween(cron, zone, last, threshold) : null;
        var fire = new List<DateTimeOffset>(onTime.Count + 1);
        if (missed is { } m && policy == MissedFirePolicy.FireOnce)
        {
            fire.Add(m);
        }

        fire.AddRange(onTime);
        DateTimeOffset? latest = onTime.Count > 0 ? onTime[^1] : missed;
        return new ScheduleTick(fire, missed, latest);
    }

    /// <summary>
    /// The latest occurrence strictly between <paramref name="after"/> and <paramref name="before"/>, found by looking
    /// back in growing windows — so a schedule that every silo missed for a month costs a few small scans, not one
    /// pass over every occurrence of the month.
    /// </summary>
    private static DateTimeOffset? LatestBetween(CronExpression cron, TimeZoneInfo zone, DateTimeOffset after, DateTimeOffset before)
    {
        var window = TimeSpan.FromMinutes(1);
        while (true)
        {
            var final = window >= before - after;
            var from = final ? after : before - window;
            var found = cron.GetOccurrences(from, before, zone, fromInclusive: !final, toInclusive: false)
                .Select(o => (DateTimeOffset?)o)
                .LastOrDefault();
            if (found is not null || final)
            {
                return found;
            }

            window = window < TimeSpan.MaxValue / 16 ? window * 16 : TimeSpan.MaxValue;
        }
    }
}
