using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Conveyor.Api.Http;

/// <summary>Parses and formats durations: Go style (<c>1h30m</c>, <c>45s</c>, <c>250ms</c>) or <c>hh:mm:ss</c>.</summary>
internal static partial class Durations
{
    /// <summary>Parses <paramref name="text"/>; false when it is not a duration.</summary>
    public static bool TryParse(string? text, out TimeSpan value)
    {
        value = default;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }

        text = text.Trim();
        if (text.Contains(':', StringComparison.Ordinal))
        {
            return TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out value);
        }

        var negative = text.StartsWith('-');
        var body = negative ? text[1..] : text;
        var matches = PartRegex().Matches(body);
        if (matches.Count == 0 || string.Concat(matches.Select(m => m.Value)) != body)
        {
            return false;
        }

        double ms = 0;
        foreach (Match m in matches)
        {
            var n = double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
            ms += m.Groups[2].Value switch
            {
                "ms" => n,
                "s" => n * 1000,
                "m" => n * 60_000,
                "h" => n * 3_600_000,
                _ => n * 86_400_000,
            };
        }

        if (ms > TimeSpan.MaxValue.TotalMilliseconds)
        {
            return false;
        }

        value = TimeSpan.FromMilliseconds(negative ? -ms : ms);
        return true;
    }

    /// <summary>Formats a duration the way <see cref="TryParse"/> reads it (<c>1h30m</c>, <c>250ms</c>).</summary>
    public static string Format(TimeSpan value)
    {
        if (value == TimeSpan.Zero)
        {
            return "0s";
        }

        var sb = new StringBuilder();
        if (value < TimeSpan.Zero)
        {
            sb.Append('-');
            value = value.Negate();
        }

        void Part(long n, string unit)
        {
            if (n > 0)
            {
                sb.Append(n.ToString(CultureInfo.InvariantCulture)).Append(unit);
            }
        }

        Part((long)value.TotalHours, "h");
        Part(value.Minutes, "m");
        Part(value.Seconds, "s");
        Part(value.Milliseconds, "ms");
        return sb.ToString();
    }

    [GeneratedRegex(@"(\d+(?:\.\d+)?)(ms|h|m|s|d)", RegexOptions.CultureInvariant)]
    private static partial Regex PartRegex();
}
