namespace Conveyor.Driver.Sdk;

/// <summary>
/// What a reconcile gets besides its event: the driver's name, a logger bound to the run and, once the engine has
/// cancelled the step, the reason why.
/// </summary>
public sealed class DriverContext
{
    private string? _cancellationReason;

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

    /// <summary>
    /// Why the engine cancelled this step (the <c>reason</c> of its cancel message, possibly empty); <c>null</c> while
    /// it has not. It is set before the reconcile's token is cancelled, so a reconcile that observes cancellation can
    /// tell an engine cancel (non-null) from a shutdown (null).
    /// </summary>
    public string? CancellationReason => Volatile.Read(ref _cancellationReason);

    /// <summary>Records the engine's cancel reason; the first one wins.</summary>
    internal void SetCancellationReason(string reason) => Interlocked.CompareExchange(ref _cancellationReason, reason, null);
}
