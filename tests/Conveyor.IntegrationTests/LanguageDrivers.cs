using System.Collections.Concurrent;
using System.Text.Json;
using Conveyor.Driver.Sdk;
using Conveyor.Testing;

namespace Conveyor.IntegrationTests;

/// <summary>
/// SDK drivers over NATS for the pipeline language's end-to-end tests: each answers by a delegate, records every event
/// it got, and can hold an answer until the test releases it.
/// </summary>
public sealed class LanguageDrivers : IAsyncDisposable
{
    private readonly List<DriverManager> _managers = [];
    private readonly CancellationTokenSource _stop = new(TimeSpan.FromMinutes(5));
    private readonly string _natsUrl;
    private readonly string _type;

    public LanguageDrivers(string natsUrl, string type)
    {
        _natsUrl = natsUrl;
        _type = type;
    }

    /// <summary>Every event each driver got, in arrival order.</summary>
    public ConcurrentDictionary<string, ConcurrentQueue<DriverEvent>> Received { get; } = new();

    /// <summary>Starts a driver under <paramref name="name"/>; by default it succeeds with <c>{"driver":…,"step":…}</c>.</summary>
    public Task StartAsync(string name, Func<DriverEvent, Task<DriverResult>>? answer = null) =>
        StartAsync(name, answer is null ? null : (e, _) => answer(e));

    /// <summary>Starts a driver whose answer sees the reconcile's cancellation (a cancel from the engine, or shutdown).</summary>
    public async Task StartAsync(string name, Func<DriverEvent, CancellationToken, Task<DriverResult>>? answer)
    {
        var log = Received.GetOrAdd(name, _ => new ConcurrentQueue<DriverEvent>());
        answer ??= (e, _) => Task.FromResult(DriverResult.Ok($"{name} ok", new { driver = name, step = e.StepId }));
        var manager = new DriverManager(
            new Driver(name, _type, log, answer),
            new DriverOptions { Name = name, Resources = [_type], NatsUrl = _natsUrl, ShutdownGracePeriod = TimeSpan.FromSeconds(2), MaxConcurrency = 8 });
        _ = manager.RunAsync(_stop.Token);
        await manager.WaitUntilReadyAsync(_stop.Token);
        _managers.Add(manager);
    }

    /// <summary>The events <paramref name="name"/> got so far.</summary>
    public List<DriverEvent> Of(string name) => Received.TryGetValue(name, out var log) ? [.. log] : [];

    /// <summary>Waits until <paramref name="name"/> got <paramref name="count"/> events.</summary>
    public Task WaitForAsync(string name, int count) =>
        Eventually.TrueAsync(() => Of(name).Count >= count, Deadlines.Event, $"driver {name} should get {count} events");

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        foreach (var manager in _managers)
        {
            await manager.DisposeAsync();
        }

        _stop.Dispose();
    }

    private sealed class Driver(string name, string type, ConcurrentQueue<DriverEvent> log, Func<DriverEvent, CancellationToken, Task<DriverResult>> answer) : IDriver
    {
        public string Name => name;

        public IReadOnlyCollection<string> Resources => [type];

        public Task<DriverResult> ReconcileAsync(DriverEvent driverEvent, DriverContext context, CancellationToken cancellationToken)
        {
            log.Enqueue(driverEvent);
            return answer(driverEvent, cancellationToken);
        }
    }
}

/// <summary>Small helpers for runs defined and read as raw JSON.</summary>
public static class LanguageRuns
{
    /// <summary>A step of <paramref name="run"/> by id.</summary>
    public static JsonElement Step(this JsonElement run, string id) =>
        run.GetProperty("steps").EnumerateArray().Single(s => s.GetProperty("id").GetString() == id);

    /// <summary>A step's status.</summary>
    public static string Status(this JsonElement run, string id) => run.Step(id).GetProperty("status").GetString()!;
}
