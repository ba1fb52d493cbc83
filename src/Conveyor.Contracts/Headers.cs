namespace Conveyor.Contracts;

/// <summary>
/// NATS headers the engine adds to what it publishes. Original drivers ignore them; the SDK echoes the step headers on
/// its result so the engine can match a result to the exact step and attempt even when one driver runs several steps.
/// </summary>
public static class Headers
{
    /// <summary>JetStream de-duplication id; the engine sets it to <c>{run}:{step}:{attempt}</c> on every dispatch.</summary>
    public const string MessageId = "Nats-Msg-Id";

    /// <summary>Run the message belongs to (also in the JSON body as <c>run_id</c>).</summary>
    public const string RunId = "Conveyor-Run-Id";

    /// <summary>Id of the pipeline step a dispatch or result is for.</summary>
    public const string StepId = "Conveyor-Step-Id";

    /// <summary>Attempt number (1-based) of the step a dispatch or result is for.</summary>
    public const string Attempt = "Conveyor-Attempt";

    /// <summary>W3C trace context.</summary>
    public const string TraceParent = "traceparent";
}
