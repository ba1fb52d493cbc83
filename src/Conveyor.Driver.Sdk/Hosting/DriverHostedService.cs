using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Conveyor.Driver.Sdk.Hosting;

/// <summary>Runs one <see cref="DriverManager"/> for the lifetime of the host.</summary>
internal sealed class DriverHostedService(
    IDriver driver,
    DriverOptions options,
    ILoggerFactory? loggerFactory,
    TimeProvider? timeProvider) : BackgroundService
{
    private DriverManager? _manager;

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        // Constructing the manager validates the options, so a bad configuration fails the host's start
        // (ExecuteAsync runs in the background and could only stop the host later).
        _manager = new DriverManager(driver, options, loggerFactory, timeProvider);
        return base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var manager = _manager ?? throw new InvalidOperationException("The driver service was not started.");
        await using (manager.ConfigureAwait(false))
        {
            await manager.RunAsync(stoppingToken).ConfigureAwait(false);
        }
    }
}
