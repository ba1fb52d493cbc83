namespace Conveyor.Grains.Abstractions;

/// <summary>
/// Base of the errors a client can cause. They cross grain boundaries (Orleans serializes them) and the HTTP layer
/// maps each kind to one status code and a ProblemDetails body.
/// </summary>
[GenerateSerializer]
[Alias("conveyor.ConveyorException")]
public abstract class ConveyorException : Exception
{
    /// <summary>Creates the exception.</summary>
    protected ConveyorException(string message) : base(message)
    {
    }
}

/// <summary>The request names an object that does not exist (HTTP 404).</summary>
[GenerateSerializer]
[Alias("conveyor.NotFoundException")]
public sealed class ConveyorNotFoundException : ConveyorException
{
    /// <summary>Creates the exception.</summary>
    public ConveyorNotFoundException(string message) : base(message)
    {
    }
}

/// <summary>The request conflicts with the current state, e.g. the object already exists (HTTP 409).</summary>
[GenerateSerializer]
[Alias("conveyor.ConflictException")]
public sealed class ConveyorConflictException : ConveyorException
{
    /// <summary>Creates the exception.</summary>
    public ConveyorConflictException(string message) : base(message)
    {
    }
}

/// <summary>The request is malformed or fails validation (HTTP 400). <see cref="Errors"/> names each field at fault.</summary>
[GenerateSerializer]
[Alias("conveyor.ValidationException")]
public sealed class ConveyorValidationException : ConveyorException
{
    /// <summary>Creates the exception for one field.</summary>
    public ConveyorValidationException(string field, string message) : base(message)
    {
        Errors = new Dictionary<string, string[]> { [field] = [message] };
    }

    /// <summary>Creates the exception for several fields.</summary>
    public ConveyorValidationException(string message, Dictionary<string, string[]> errors) : base(message)
    {
        Errors = errors;
    }

    /// <summary>Errors by field path (e.g. <c>spec.image</c>, <c>steps[1].dependsOn</c>).</summary>
    [Id(0)]
    public Dictionary<string, string[]> Errors { get; init; }
}

/// <summary>
/// A run is stored but its record cannot be read (corrupt, or written in a layout this version does not know): not the
/// client's mistake, and not passing either (HTTP 500 with its own problem type). Its results are retried and then
/// dead-lettered; deleting the run removes it.
/// </summary>
[GenerateSerializer]
[Alias("conveyor.RunUnreadableException")]
public sealed class RunUnreadableException : ConveyorException
{
    /// <summary>Creates the exception.</summary>
    public RunUnreadableException(string message) : base(message)
    {
    }
}

/// <summary>
/// A request exceeds a configured limit (HTTP 400, or 413 when <see cref="TooLarge"/>); <see cref="Limit"/> names the
/// setting, so the client knows what to change or whom to ask.
/// </summary>
[GenerateSerializer]
[Alias("conveyor.LimitExceededException")]
public sealed class ConveyorLimitExceededException : ConveyorException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="field">The field at fault (e.g. <c>steps</c>, <c>spec</c>).</param>
    /// <param name="limit">The setting (e.g. <c>Conveyor:Limits:MaxStepsPerPipeline</c>).</param>
    /// <param name="value">The limit's value, as the setting is written.</param>
    /// <param name="message">What exceeds it.</param>
    /// <param name="tooLarge">Whether a size is exceeded (413) rather than a count or a rate (400).</param>
    public ConveyorLimitExceededException(string field, string limit, string value, string message, bool tooLarge = false) : base(message)
    {
        Field = field;
        Limit = limit;
        Value = value;
        TooLarge = tooLarge;
    }

    /// <summary>The field at fault.</summary>
    [Id(0)] public string Field { get; init; }

    /// <summary>The setting that limits it.</summary>
    [Id(1)] public string Limit { get; init; }

    /// <summary>The setting's value.</summary>
    [Id(2)] public string Value { get; init; }

    /// <summary>Whether a size is exceeded (413).</summary>
    [Id(3)] public bool TooLarge { get; init; }
}
