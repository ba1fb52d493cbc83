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

    /// <summary>Fetches secret values from the API with the step token; set by the <see cref="DriverManager"/>.</summary>
    internal Func<string?, CancellationToken, Task<IReadOnlyDictionary<string, string>>>? SecretFetcher { get; set; }

    /// <summary>
    /// The current values of every secret the step references (<c>secrets</c> in the pipeline), fetched from the API
    /// with this dispatch's step token — valid only while this attempt runs. Values are never logged by the SDK; do
    /// not log them yourself.
    /// </summary>
    /// <exception cref="DriverConfigurationException"><see cref="DriverOptions.ApiUrl"/> is not set.</exception>
    /// <exception cref="InvalidOperationException">The event carries no step token (not a pipeline step, or the server has no secrets key).</exception>
    /// <exception cref="Conveyor.Client.ConveyorApiException">The API refused (401: token invalid or expired; 403: attempt over; 404: secret deleted).</exception>
    public Task<IReadOnlyDictionary<string, string>> GetSecretsAsync(CancellationToken cancellationToken = default) =>
        Fetcher()(null, cancellationToken);

    /// <summary>The current value of one secret the step references; see <see cref="GetSecretsAsync"/>.</summary>
    public async Task<string> GetSecretAsync(string name, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        var values = await Fetcher()(name, cancellationToken).ConfigureAwait(false);
        return values.TryGetValue(name, out var value) ? value : throw new InvalidOperationException($"The API returned no value for secret {name}.");
    }

    private Func<string?, CancellationToken, Task<IReadOnlyDictionary<string, string>>> Fetcher() =>
        SecretFetcher ?? throw new DriverConfigurationException(nameof(DriverOptions.ApiUrl), "Fetching secrets needs DriverOptions.ApiUrl (the Conveyor API root).");

    /// <summary>Records the engine's cancel reason; the first one wins.</summary>
    internal void SetCancellationReason(string reason) => Interlocked.CompareExchange(ref _cancellationReason, reason, null);
}
