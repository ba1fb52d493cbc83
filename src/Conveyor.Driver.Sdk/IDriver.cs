namespace Conveyor.Driver.Sdk;

/// <summary>
/// A Conveyor driver: reconciles the resources of the types it listens for. Implementations must be safe to call
/// concurrently (the <see cref="DriverManager"/> runs up to <see cref="DriverOptions.MaxConcurrency"/> reconciles at
/// once) and should be idempotent, since a message can be delivered again after a crash or a lost acknowledgement.
/// </summary>
public interface IDriver
{
    /// <summary>Driver name (a DNS label); <see cref="DriverOptions.Name"/> overrides it when set.</summary>
    string Name { get; }

    /// <summary>Resource types the driver listens for; <see cref="DriverOptions.Resources"/> overrides them when set.</summary>
    IReadOnlyCollection<string> Resources { get; }

    /// <summary>
    /// Reconciles one event. Return <see cref="DriverResult.Fail"/> for an expected failure; an exception is reported
    /// as a failure with the exception's message. <paramref name="cancellationToken"/> is cancelled when the driver
    /// shuts down and the grace period has passed (the message is then handed back to another instance), or when the
    /// engine cancels the step (<see cref="DriverContext.CancellationReason"/> is then set, and the result reported is
    /// <c>cancelled: {reason}</c> whatever the reconcile returns).
    /// </summary>
    Task<DriverResult> ReconcileAsync(DriverEvent driverEvent, DriverContext context, CancellationToken cancellationToken);
}
