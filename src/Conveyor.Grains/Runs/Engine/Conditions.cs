using Conveyor.Grains.Abstractions;

namespace Conveyor.Grains.Runs.Engine;

/// <summary>
/// Evaluates a step's <c>when</c> condition. Pure: the same expression over the same scope gives the same answer, so
/// the state machine calls it while deciding and stays free of the expression library's types.
/// </summary>
internal interface IConditionEvaluator
{
    /// <summary>The value of <paramref name="expression"/> over <paramref name="scope"/>, or why it has none.</summary>
    ConditionResult Evaluate(string expression, ConditionScope scope);
}

/// <summary>A condition's value, or the error that kept it from having one.</summary>
/// <param name="Value">The value (false when <paramref name="Error"/> is set).</param>
/// <param name="Error">Why the expression could not be evaluated to a boolean; null when it was.</param>
internal readonly record struct ConditionResult(bool Value, string? Error)
{
    /// <summary>A value.</summary>
    public static ConditionResult Of(bool value) => new(value, null);

    /// <summary>An error.</summary>
    public static ConditionResult Failed(string error) => new(false, error);
}

/// <summary>
/// What a condition sees: <c>params</c> (the step's params with the run's over them), <c>inputs</c> (outputs of its
/// dependencies by step id), <c>steps</c> (<c>{id: {status, output}}</c> of every step), <c>resource</c>,
/// <c>trigger</c> and <c>run</c>. Outputs are raw JSON, read only when the expression touches them.
/// </summary>
internal sealed class ConditionScope
{
    /// <summary>The step's params with the run's laid over them (raw JSON object), or null.</summary>
    public string? Params { get; init; }

    /// <summary>The outputs (raw JSON, null for none) of the step's dependencies, by step id.</summary>
    public IReadOnlyList<KeyValuePair<string, string?>> Inputs { get; init; } = [];

    /// <summary>Every step id of the run, in declaration order.</summary>
    public IReadOnlyList<string> StepIds { get; init; } = [];

    /// <summary>A step's status name and output by id; null for an id the run does not have.</summary>
    public Func<string, (string Status, string? Output)?> Step { get; init; } = static _ => null;

    /// <summary>The run's resource snapshot.</summary>
    public ResourceData Resource { get; init; } = new();

    /// <summary>What started the run (<c>resource</c>, <c>manual</c>, <c>schedule:&lt;name&gt;</c>, <c>webhook:&lt;name&gt;</c>).</summary>
    public string Trigger { get; init; } = "";

    /// <summary>The trigger event's id, if any.</summary>
    public string? TriggerId { get; init; }

    /// <summary>The run's id.</summary>
    public Guid RunId { get; init; }

    /// <summary>
    /// The run's status as a condition sees it: <c>Running</c> for the main steps; for a <c>finally</c> step, what the
    /// main steps make of the run (<c>Succeeded</c> or <c>Failed</c>).
    /// </summary>
    public string RunStatus { get; init; } = "";

    /// <summary>The run's pipeline.</summary>
    public string Pipeline { get; init; } = "";

    /// <summary>The run's namespace.</summary>
    public string Namespace { get; init; } = "";

    /// <summary>The run attempt (1, plus one per retry).</summary>
    public int RunAttempt { get; init; }
}
