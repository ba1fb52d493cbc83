namespace Conveyor.Driver.Sdk;

/// <summary>What a reconcile gets besides its event: the driver's name and a logger bound to the run.</summary>
public sealed class DriverContext
{
    /// <summary>
    /// Creates a context. The <see cref="DriverManager"/> makes one per message; create your own to unit-test a
    /// reconcile, with a logger from <see cref="DriverLogger.Create"/>.
    /// </summary>
    public DriverContext(string driverName, DriverEvent driverEvent, DriverLogger logger)
    {
        ArgumentException.ThrowIfNullOrEmpty(driverName);
        ArgumentNullException.ThrowIfNull(driverEvent);
        ArgumentNullException.ThrowIfNull(logger);
        DriverName = driverName;
        Event = driverEvent;
        Logger = logger;
    }

    /// <summary>Name of the driver handling the event (several names can share one <see cref="IDriver"/>).</summary>
    public string DriverName { get; }

    /// <summary>The event being reconciled.</summary>
    public DriverEvent Event { get; }

    /// <summary>Writes to the run's log (<c>logs.{runid}</c> and <c>live.logs.{runid}.{driver}</c>).</summary>
    public DriverLogger Logger { get; }
}
