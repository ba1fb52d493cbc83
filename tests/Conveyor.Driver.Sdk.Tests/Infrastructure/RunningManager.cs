using Conveyor.Testing;
using Microsoft.Extensions.Logging;

namespace Conveyor.Driver.Sdk.Tests.Infrastructure;

/// <summary>A <see cref="DriverManager"/> running in the background until stopped.</summary>
public sealed class RunningManager : IAsyncDisposable
{
    private static readonly TimeSpan ReadyTimeout = Deadlines.Startup;
    private readonly CancellationTokenSource _stop = new();
    private Task? _run;

    private RunningManager(DriverManager manager) => Manager = manager;

    public DriverManager Manager { get; }

    /// <summary>The task of <see cref="DriverManager.RunAsync"/>.</summary>
    public Task Run => _run ?? Task.CompletedTask;

    public static async Task<RunningManager> StartAsync(IDriver driver, DriverOptions options, ILoggerFactory? loggerFactory = null)
    {
        var running = new RunningManager(new DriverManager(driver, options, loggerFactory));
        running._run = Task.Run(() => running.Manager.RunAsync(running._stop.Token));
        await running.Manager.WaitUntilReadyAsync().WaitAsync(ReadyTimeout);
        return running;
    }

    /// <summary>Asks the manager to shut down; returns its run task without waiting.</summary>
    public Task RequestStopAsync()
    {
        _stop.Cancel();
        return Run;
    }

    public async Task StopAsync()
    {
        _stop.Cancel();
        await Run.WaitAsync(Deadlines.Event);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await StopAsync();
        }
        finally
        {
            await Manager.DisposeAsync();
            _stop.Dispose();
        }
    }
}
