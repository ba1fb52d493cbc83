namespace Conveyor.Driver.Sdk;

/// <summary>What a reconcile gets besides its event: the driver's name and a logger bound to the run.</summary>
public sealed class DriverContext
{
    internal DriverContext(string driverName, DriverEvent driverEvent, DriverLogger logger)
    {
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
