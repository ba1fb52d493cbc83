namespace Conveyor.Contracts;

/// <summary>
/// Histogram bucket bounds of Conveyor's duration instruments, which the engine and the driver SDK pass as advice so
/// that any OpenTelemetry exporter uses them. OpenTelemetry's default bounds (0, 5, 10, 25 … 10000) are meant for
/// milliseconds: a histogram in seconds would put every step shorter than 5 s into one bucket.
/// </summary>
public static class MetricBuckets
{
    /// <summary>
    /// Bounds for durations in seconds: from 5 ms (a dispatch JetStream stores at once) to an hour (a long build).
    /// </summary>
    public static IReadOnlyList<double> Seconds { get; } =
        [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];
}
