using System.Collections.Concurrent;

namespace Conveyor.Driver.Sdk.Tests.Infrastructure;

/// <summary>A driver whose reconcile is a delegate; it records every event it receives.</summary>
public sealed class TestDriver(
    string name,
    Func<DriverEvent, DriverContext, CancellationToken, Task<DriverResult>> reconcile,
    params string[] resources) : IDriver
{
    public TestDriver(string name, params string[] resources)
        : this(name, (e, c, _) => Task.FromResult(DriverResult.Ok($"{c.DriverName} done", new { run = e.RunId })), resources)
    {
    }

    public string Name => name;

    public IReadOnlyCollection<string> Resources => resources.Length == 0 ? ["app"] : resources;

    public ConcurrentQueue<DriverEvent> Received { get; } = new();

    public async Task<DriverResult> ReconcileAsync(DriverEvent driverEvent, DriverContext context, CancellationToken cancellationToken)
    {
        Received.Enqueue(driverEvent);
        return await reconcile(driverEvent, context, cancellationToken);
    }
}
