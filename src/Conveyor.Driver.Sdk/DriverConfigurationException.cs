namespace Conveyor.Driver.Sdk;

/// <summary>A driver's configuration is invalid; <see cref="Field"/> names the offending option.</summary>
public sealed class DriverConfigurationException : Exception
{
    /// <summary>Creates the exception.</summary>
    public DriverConfigurationException()
        : this("", "The driver configuration is invalid.")
    {
    }

    /// <summary>Creates the exception.</summary>
    public DriverConfigurationException(string message)
        : this("", message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public DriverConfigurationException(string message, Exception innerException)
        : base(message, innerException)
    {
        Field = "";
    }

    /// <summary>Creates the exception for <paramref name="field"/>.</summary>
    public DriverConfigurationException(string field, string message)
        : base(string.IsNullOrEmpty(field) ? message : $"{field}: {message}")
    {
        Field = field;
    }

    /// <summary>Name of the <see cref="DriverOptions"/> property that is invalid.</summary>
    public string Field { get; }
}
