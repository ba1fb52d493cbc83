using System.Globalization;
using Microsoft.Extensions.Configuration;

namespace Conveyor.Samples.Echo;

/// <summary>What the sample serves, from configuration or the command line (<c>--drivers build,test --fail test</c>).</summary>
internal sealed record EchoSettings(
    IReadOnlyList<string> Drivers,
    IReadOnlyList<string> Resources,
    string NatsUrl,
    IReadOnlySet<string> Failing,
    TimeSpan Delay)
{
    public static EchoSettings From(IConfiguration configuration) => new(
        List(configuration["drivers"], "echo"),
        List(configuration["resources"], "app"),
        configuration["nats"] is { Length: > 0 } url ? url : "nats://127.0.0.1:4222",
        List(configuration["fail"], null).ToHashSet(StringComparer.Ordinal),
        ParseDelay(configuration["delay"]));

    private static string[] List(string? value, string? fallback)
    {
        var items = (value ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return items.Length > 0 || fallback is null ? items : [fallback];
    }

    /// <summary>Accepts a TimeSpan (<c>00:00:02</c>) or milliseconds (<c>2000</c>).</summary>
    private static TimeSpan ParseDelay(string? value) =>
        string.IsNullOrWhiteSpace(value) ? TimeSpan.Zero
        : int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var ms) ? TimeSpan.FromMilliseconds(ms)
        : TimeSpan.Parse(value, CultureInfo.InvariantCulture);
}
