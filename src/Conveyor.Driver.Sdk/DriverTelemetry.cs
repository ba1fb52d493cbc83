using System.Diagnostics;
using System.Diagnostics.Metrics;
using NATS.Client.Core;

namespace Conveyor.Driver.Sdk;

/// <summary>
/// The driver runtime's tracing and metrics: activity source and meter <c>Conveyor.Driver</c>. A reconcile span is a
/// child of the engine's dispatch span (the W3C <c>traceparent</c> header of the message), and the result carries the
/// reconcile span's <c>traceparent</c> back, so one trace runs from the API request through every step.
/// </summary>
public static class DriverTelemetry
{
    /// <summary>Name of the activity source and meter.</summary>
    public const string Name = "Conveyor.Driver";

    /// <summary>Span of one reconcile, from taking the message to publishing its result.</summary>
    public const string ReconcileActivity = "conveyor.driver.reconcile";

    /// <summary>The SDK's activity source.</summary>
    public static readonly ActivitySource Source = new(Name, typeof(DriverTelemetry).Assembly.GetName().Version?.ToString());

    private static readonly Meter Meter = new(Name, typeof(DriverTelemetry).Assembly.GetName().Version?.ToString());

    private static readonly Histogram<double> ReconcileDuration =
        Meter.CreateHistogram(
            "conveyor.driver.reconcile.duration",
            "s",
            "Duration of reconciles, by driver and outcome.",
            tags: null,
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = Contracts.MetricBuckets.Seconds });

    internal static Activity? StartReconcile(NatsHeaders? headers, string driver, DriverEvent driverEvent)
    {
        var parent = headers is not null
            && headers.TryGetValue(Contracts.Headers.TraceParent, out var values)
            && values.Count > 0
            && ActivityContext.TryParse(values[0], null, isRemote: true, out var parsed)
                ? parsed
                : default;
        var activity = Source.StartActivity(ReconcileActivity, ActivityKind.Consumer, parent);
        if (activity is not null)
        {
            activity.SetTag("conveyor.driver", driver);
            activity.SetTag("conveyor.run.id", driverEvent.RunId);
            activity.SetTag("conveyor.step", driverEvent.StepId);
            activity.SetTag("conveyor.attempt", driverEvent.Attempt);
            activity.SetTag("conveyor.event", driverEvent.Event);
        }

        return activity;
    }

    internal static void RecordReconcile(string driver, bool success, TimeSpan duration) =>
        ReconcileDuration.Record(duration.TotalSeconds, new TagList { { "driver", driver }, { "success", success } });
}
