using System.Text.RegularExpressions;

namespace Conveyor.Driver.Sdk;

/// <summary>Settings of one driver manager (configuration section <c>Conveyor:Driver</c>).</summary>
public sealed partial class DriverOptions
{
    /// <summary>Default configuration section.</summary>
    public const string Section = "Conveyor:Driver";

    /// <summary>
    /// Driver name: 1–63 lowercase letters, digits and '-', starting and ending with a letter or digit. Empty means
    /// <see cref="IDriver.Name"/>. Instances with the same name share their consumers and split the work.
    /// </summary>
    public string? Name { get; set; }

    /// <summary>Resource types to listen for (same name rule). Empty means <see cref="IDriver.Resources"/>.</summary>
    public IList<string> Resources { get; set; } = [];

    /// <summary>NATS server URL.</summary>
    public string NatsUrl { get; set; } = "nats://127.0.0.1:4222";

    /// <summary>User name for NATS user/password authentication.</summary>
    public string? NatsUser { get; set; }

    /// <summary>Password for NATS user/password authentication. Never logged.</summary>
    public string? NatsPassword { get; set; }

    /// <summary>Token for NATS token authentication. Never logged.</summary>
    public string? NatsToken { get; set; }

    /// <summary>PEM file of the CA that signed the NATS server's certificate; setting it (or a <c>tls://</c> URL) requires TLS.</summary>
    public string? NatsTlsCaFile { get; set; }

    /// <summary>PEM client certificate, for NATS servers that verify clients.</summary>
    public string? NatsTlsCertFile { get; set; }

    /// <summary>PEM private key of <see cref="NatsTlsCertFile"/>.</summary>
    public string? NatsTlsKeyFile { get; set; }

    /// <summary>
    /// Root of the Conveyor HTTP API (e.g. <c>http://127.0.0.1:8080/</c>), needed only by
    /// <see cref="DriverContext.GetSecretsAsync"/>: secrets are fetched from the API with the step's token, never
    /// carried in NATS messages.
    /// </summary>
    public string? ApiUrl { get; set; }

    /// <summary>Most reconciles this process runs at once, across all resource types.</summary>
    public int MaxConcurrency { get; set; } = 4;

    /// <summary>
    /// <c>max_ack_pending</c> of each consumer; <c>null</c> means <see cref="MaxConcurrency"/>. The limit is enforced
    /// by the server per consumer, across every instance of the driver: when running several instances, raise it to
    /// about <see cref="MaxConcurrency"/> × instances so that each can work at full concurrency.
    /// </summary>
    public int? MaxAckPending { get; set; }

    /// <summary>
    /// How long the server waits for an acknowledgement before redelivering a message. Reconciles that take longer
    /// are kept alive by progress heartbeats every third of this time.
    /// </summary>
    public TimeSpan AckWait { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>On shutdown, how long in-flight reconciles may run before they are cancelled and handed back.</summary>
    public TimeSpan ShutdownGracePeriod { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Delay before a message whose result could not be published is delivered again.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Longest a pull request waits on the server for a message before it is renewed. Shutdown waits for the
    /// outstanding pull requests to expire (JetStream cannot withdraw them), so this also bounds how long an idle
    /// driver takes to stop.
    /// </summary>
    public TimeSpan FetchExpiry { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Whether <paramref name="value"/> is a valid driver or resource type name.</summary>
    public static bool IsValidName(string? value) => value is { Length: > 0 and <= 63 } && NameRegex().IsMatch(value);

    /// <summary>Checks the options and throws a <see cref="DriverConfigurationException"/> naming the first bad field.</summary>
    /// <exception cref="DriverConfigurationException">A field is missing or out of range.</exception>
    public void Validate()
    {
        if (string.IsNullOrEmpty(Name))
        {
            throw new DriverConfigurationException(nameof(Name), "The driver name is required.");
        }

        if (!IsValidName(Name))
        {
            throw new DriverConfigurationException(nameof(Name), $"The driver name '{Name}' must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit.");
        }

        if (Resources is not { Count: > 0 })
        {
            throw new DriverConfigurationException(nameof(Resources), "At least one resource type is required.");
        }

        foreach (var resource in Resources)
        {
            if (!IsValidName(resource))
            {
                throw new DriverConfigurationException(nameof(Resources), $"The resource type '{resource}' must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit.");
            }
        }

        if (string.IsNullOrWhiteSpace(NatsUrl))
        {
            throw new DriverConfigurationException(nameof(NatsUrl), "The NATS URL is required.");
        }

        if (!string.IsNullOrEmpty(ApiUrl) && !Uri.TryCreate(ApiUrl, UriKind.Absolute, out _))
        {
            throw new DriverConfigurationException(nameof(ApiUrl), $"ApiUrl must be an absolute URL (got '{ApiUrl}').");
        }

        if (MaxConcurrency < 1)
        {
            throw new DriverConfigurationException(nameof(MaxConcurrency), $"MaxConcurrency must be at least 1 (got {MaxConcurrency}).");
        }

        if (MaxAckPending is < 1)
        {
            throw new DriverConfigurationException(nameof(MaxAckPending), $"MaxAckPending must be at least 1 (got {MaxAckPending}).");
        }

        if (AckWait < TimeSpan.FromMilliseconds(300))
        {
            throw new DriverConfigurationException(nameof(AckWait), $"AckWait must be at least 300 ms (got {AckWait}).");
        }

        if (ShutdownGracePeriod < TimeSpan.Zero)
        {
            throw new DriverConfigurationException(nameof(ShutdownGracePeriod), "ShutdownGracePeriod cannot be negative.");
        }

        if (RetryDelay < TimeSpan.Zero)
        {
            throw new DriverConfigurationException(nameof(RetryDelay), "RetryDelay cannot be negative.");
        }

        if (FetchExpiry < TimeSpan.FromSeconds(1))
        {
            throw new DriverConfigurationException(nameof(FetchExpiry), $"FetchExpiry must be at least 1 s (got {FetchExpiry}).");
        }
    }

    /// <summary>A copy with <see cref="Name"/> and <see cref="Resources"/> taken from <paramref name="driver"/> where unset.</summary>
    internal DriverOptions ResolveFor(IDriver driver)
    {
        var copy = (DriverOptions)MemberwiseClone();
        copy.Name = string.IsNullOrEmpty(Name) ? driver.Name : Name;
        copy.Resources = Resources is { Count: > 0 } ? [.. Resources] : [.. driver.Resources ?? []];
        return copy;
    }

    /// <inheritdoc />
    public override string ToString() =>
        $"Name={Name}, Resources=[{string.Join(',', Resources)}], NatsUrl={NatsUrl}, ApiUrl={ApiUrl}, NatsUser={NatsUser}, " +
        $"NatsPassword={(NatsPassword is null ? "" : "***")}, NatsToken={(NatsToken is null ? "" : "***")}, " +
        $"MaxConcurrency={MaxConcurrency}, MaxAckPending={MaxAckPending}, AckWait={AckWait}, ShutdownGracePeriod={ShutdownGracePeriod}";

    [GeneratedRegex("^[a-z0-9]([a-z0-9-]*[a-z0-9])?$", RegexOptions.CultureInvariant)]
    private static partial Regex NameRegex();
}
