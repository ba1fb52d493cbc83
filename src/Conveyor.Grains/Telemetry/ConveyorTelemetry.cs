using System.Diagnostics;
using NATS.Client.Core;
using Orleans.Runtime;

namespace Conveyor.Grains.Telemetry;

/// <summary>
/// The engine's tracing: one <see cref="ActivitySource"/> named <c>Conveyor</c>. Only System.Diagnostics is used here;
/// the host decides whether anything listens (OpenTelemetry is wired in the hosting layer).
/// </summary>
public static class ConveyorTelemetry
{
    /// <summary>Name of the engine's activity source and meter.</summary>
    public const string Name = "Conveyor";

    /// <summary>Span of a run's start (and of a retry of the run): the root of the run's work.</summary>
    public const string RunStartActivity = "conveyor.run.start";

    /// <summary>Span of one dispatch of a step attempt to its driver over NATS.</summary>
    public const string DispatchActivity = "conveyor.step.dispatch";

    /// <summary>Span of applying a driver's result to its run.</summary>
    public const string ResultApplyActivity = "conveyor.result.apply";

    /// <summary>The engine's activity source.</summary>
    internal static readonly ActivitySource Source = new(Name, typeof(ConveyorTelemetry).Assembly.GetName().Version?.ToString());

    /// <summary>
    /// The context a grain call runs in: the current activity, or the W3C <c>traceparent</c> that Orleans' activity
    /// propagation carries in the request context when no listener created an activity for the call itself.
    /// </summary>
    internal static ActivityContext CallerContext()
    {
        if (Activity.Current is { } current)
        {
            return current.Context;
        }

        return RequestContext.Get("traceparent") is string traceParent && ActivityContext.TryParse(traceParent, null, isRemote: true, out var parsed)
            ? parsed
            : default;
    }

    /// <summary>Parses a stored or received W3C <c>traceparent</c>; default when absent or invalid.</summary>
    internal static ActivityContext Parse(string? traceParent) =>
        traceParent is not null && ActivityContext.TryParse(traceParent, null, isRemote: true, out var parsed) ? parsed : default;

    /// <summary>The <c>traceparent</c> header of a NATS message, parsed; default when absent or invalid.</summary>
    internal static ActivityContext FromHeaders(NatsHeaders? headers) =>
        headers is not null && headers.TryGetValue(Contracts.Headers.TraceParent, out var values) && values.Count > 0 ? Parse(values[0]) : default;

    /// <summary>Formats a context as a W3C <c>traceparent</c>; null for an empty context.</summary>
    internal static string? Format(ActivityContext context) =>
        context == default ? null : $"00-{context.TraceId.ToHexString()}-{context.SpanId.ToHexString()}-{((context.TraceFlags & ActivityTraceFlags.Recorded) != 0 ? "01" : "00")}";
}
