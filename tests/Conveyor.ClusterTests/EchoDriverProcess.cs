namespace Conveyor.ClusterTests;

/// <summary>
/// The <c>samples/EchoDriver</c> program (built on the driver SDK) as its own process: it logs each delivery to the
/// run log ("step X, attempt N"), works for <c>delay</c>, then reports success.
/// </summary>
public sealed class EchoDriverProcess : DotnetProcess
{
    private EchoDriverProcess(string name, IEnumerable<string> arguments)
        : base(name, BuiltAssembly("samples/EchoDriver", "EchoDriver"), arguments)
    {
    }

    /// <summary>Starts an instance serving <paramref name="driver"/> for resource type <c>app</c>.</summary>
    public static EchoDriverProcess Start(string name, string natsUrl, string driver, TimeSpan delay, TimeSpan ackWait) =>
        new(name,
        [
            "--drivers", driver,
            "--resources", ClusterLoad.ResourceType,
            "--nats", natsUrl,
            "--delay", ((int)delay.TotalMilliseconds).ToString(System.Globalization.CultureInfo.InvariantCulture),
            $"--Conveyor:Driver:AckWait={ackWait:c}",
            "--Conveyor:Driver:FetchExpiry=00:00:01",
        ]);
}
