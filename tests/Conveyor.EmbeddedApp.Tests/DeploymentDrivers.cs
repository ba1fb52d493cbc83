using System.Collections.Concurrent;
using Conveyor.Driver.Sdk;
using Conveyor.Testing;

namespace Conveyor.EmbeddedApp.Tests;

/// <summary>
/// The drivers of the sample's <c>deploy</c> pipeline (<c>build</c> and <c>deploy</c> on resource type <c>service</c>),
/// run with the SDK's <see cref="DriverManager"/> the way a team would run them next to the app.
/// </summary>
public sealed class DeploymentDrivers : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly List<(DriverManager Manager, Task Run)> _running = [];

    private DeploymentDrivers()
    {
    }

    /// <summary>Every event the drivers received, in order, with the name of the driver that got it.</summary>
    public ConcurrentQueue<(string Driver, DriverEvent Event)> Events { get; } = new();

    public IEnumerable<(string Driver, DriverEvent Event)> ForRun(string runId) => Events.Where(e => e.Event.RunId == runId);

    public static async Task<DeploymentDrivers> StartAsync(string natsUrl)
    {
        var drivers = new DeploymentDrivers();
        try
        {
            foreach (var name in new[] { "build", "deploy" })
            {
                var manager = new DriverManager(
                    new RecordingDriver(name, drivers.Events),
                    new DriverOptions { Name = name, Resources = ["service"], NatsUrl = natsUrl, ShutdownGracePeriod = TimeSpan.FromSeconds(2) });
                drivers._running.Add((manager, Task.Run(() => manager.RunAsync(drivers._stop.Token))));
                await manager.WaitUntilReadyAsync().WaitAsync(Deadlines.Event);
            }

            return drivers;
        }
        catch
        {
            await drivers.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        foreach (var (manager, run) in _running)
        {
            await run.WaitAsync(Deadlines.Event);
            await manager.DisposeAsync();
        }

        _stop.Dispose();
    }

    private sealed class RecordingDriver(string name, ConcurrentQueue<(string Driver, DriverEvent Event)> events) : IDriver
    {
        public string Name => name;

        public IReadOnlyCollection<string> Resources => ["service"];

        public async Task<DriverResult> ReconcileAsync(DriverEvent driverEvent, DriverContext context, CancellationToken cancellationToken)
        {
            events.Enqueue((name, driverEvent));
            var image = driverEvent.Resource.Spec?.GetProperty("image").GetString();
            await context.Logger.LogAsync($"{name} {driverEvent.Resource.Name} with {image}", cancellationToken: cancellationToken);
            return name == "build"
                ? DriverResult.Ok($"built {image}", new { image = $"registry.local/{image}" })
                : DriverResult.Ok($"deployed {driverEvent.Resource.Name}", new { url = $"https://{driverEvent.Resource.Name}.apps.local" });
        }
    }
}
