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
