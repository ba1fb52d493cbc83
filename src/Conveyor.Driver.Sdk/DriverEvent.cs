using Conveyor.Contracts;

namespace Conveyor.Driver.Sdk;

/// <summary>One message delivered to a driver, decoded.</summary>
public sealed record DriverEvent
{
    /// <summary><c>create</c> or <c>process</c> (see <see cref="EventNames"/>), or a custom event name.</summary>
    public required string Event { get; init; }

    /// <summary>Run id (<c>run_id</c> of the message).</summary>
    public required string RunId { get; init; }

    /// <summary>Message id (<c>id</c> of the message, 24 lowercase hex characters).</summary>
    public required string MessageId { get; init; }

    /// <summary>The raw <c>payload</c> string: the resource JSON.</summary>
    public required string Payload { get; init; }

    /// <summary>The resource parsed from <see cref="Payload"/>.</summary>
    public required Resource Resource { get; init; }

    /// <summary>Subject the message arrived on: <c>resources.{type}</c> or <c>drivers.{driver}.resources.{type}</c>.</summary>
    public required string Subject { get; init; }

    /// <summary>Pipeline step the message is for (header <c>Conveyor-Step-Id</c>); <c>null</c> outside a run step.</summary>
    public string? StepId { get; init; }

    /// <summary>Attempt number of the step (header <c>Conveyor-Attempt</c>), starting at 1.</summary>
    public int? Attempt { get; init; }

    /// <summary>How many times JetStream has delivered this message (1 on the first delivery).</summary>
    public int DeliveryCount { get; init; } = 1;
}
