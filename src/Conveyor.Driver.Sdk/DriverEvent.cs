using System.Collections.ObjectModel;
using System.Text.Json;
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

    /// <summary>
    /// Pipeline step the message is for: the message's <c>step</c> field, else its <c>Conveyor-Step-Id</c> header;
    /// <c>null</c> outside a run step.
    /// </summary>
    public string? StepId { get; init; }

    /// <summary>
    /// Attempt number of the step, starting at 1: the message's <c>attempt</c> field, else its <c>Conveyor-Attempt</c>
    /// header; <c>null</c> when the message carries neither.
    /// </summary>
    public int? Attempt { get; init; }

    /// <summary>
    /// The step's <c>params</c> from the pipeline definition (the message's <c>params</c> field); <c>null</c> when the
    /// step declares none or the engine does not send them (the original never does).
    /// </summary>
    public JsonElement? Params { get; init; }

    /// <summary>
    /// The <c>data</c> output of each direct dependency of the step that succeeded, keyed by step id (the message's
    /// <c>inputs</c> field); empty when there are none or the engine does not send them.
    /// </summary>
    public IReadOnlyDictionary<string, JsonElement> Inputs { get; init; } = ReadOnlyDictionary<string, JsonElement>.Empty;

    /// <summary>How many times JetStream has delivered this message (1 on the first delivery).</summary>
    public int DeliveryCount { get; init; } = 1;

    /// <summary>The pipeline's plain variables (the message's <c>variables</c>); empty when none.</summary>
    public IReadOnlyDictionary<string, string> Variables { get; init; } = ReadOnlyDictionary<string, string>.Empty;

    /// <summary>The dispatch's step token (what <see cref="DriverContext.GetSecretsAsync"/> presents); kept out of <c>ToString</c>.</summary>
    internal string? StepToken { get; init; }
}
