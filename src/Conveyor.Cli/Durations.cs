using System.Globalization;
using System.Text.RegularExpressions;

namespace Conveyor.Cli;

/// <summary>Durations as people type them: <c>500ms</c>, <c>30s</c>, <c>2m</c>, <c>1h30m</c>, plain seconds, or <c>00:00:30</c>.</summary>
internal static partial class Durations
{
    /// <summary>Parses <paramref name="text"/>; <c>0</c> is a zero duration (no limit, where a limit is meant).</summary>
    public static bool TryParse(string text, out TimeSpan value)
    {
        text = text.Trim();
        if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) && seconds >= 0 && seconds < 1e9)
        {
            value = TimeSpan.FromSeconds(seconds);
            return true;
        }

        var match = Units().Match(text);
        if (match.Success && match.Length > 0)
        {
            value = TimeSpan.Zero;
            foreach (Capture part in match.Groups["part"].Captures)
            {
                var number = double.Parse(part.Value.TrimEnd('h', 'm', 's'), NumberStyles.Float, CultureInfo.InvariantCulture);
                value += part.Value.EndsWith("ms", StringComparison.Ordinal) ? TimeSpan.FromMilliseconds(number)
                    : part.Value.EndsWith('h') ? TimeSpan.FromHours(number)
                    : part.Value.EndsWith('m') ? TimeSpan.FromMinutes(number)
                    : TimeSpan.FromSeconds(number);
            }

            return true;
        }

        return TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out value) && value >= TimeSpan.Zero;
    }

    /// <summary>A short form: <c>30s</c>, <c>2m</c>, <c>1h30m</c>, <c>500ms</c>.</summary>
    public static string Format(TimeSpan value)
    {
        if (value < TimeSpan.FromSeconds(1))
        {
            return ((int)value.TotalMilliseconds).ToString(CultureInfo.InvariantCulture) + "ms";
        }

        var parts = new List<string>();
        if (value.TotalHours >= 1)
        {
            parts.Add(((int)value.TotalHours).ToString(CultureInfo.InvariantCulture) + "h");
        }

        if (value.Minutes > 0)
        {
            parts.Add(value.Minutes.ToString(CultureInfo.InvariantCulture) + "m");
        }

        var secs = value.Seconds + (value.Milliseconds / 1000.0);
        if (secs > 0)
        {
            parts.Add(secs.ToString("0.###", CultureInfo.InvariantCulture) + "s");
        }

        return string.Concat(parts);
    }

    [GeneratedRegex(@"^(?<part>[0-9]+(\.[0-9]+)?(ms|h|m|s))+$", RegexOptions.CultureInvariant)]
    private static partial Regex Units();
}
