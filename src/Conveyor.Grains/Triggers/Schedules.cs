using Cronos;

namespace Conveyor.Grains.Triggers;

/// <summary>Cron parsing shared by validation and the schedule grain.</summary>
public static class Schedules
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
}
