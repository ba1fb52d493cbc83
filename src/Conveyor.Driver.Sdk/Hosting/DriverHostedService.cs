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
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Constructing the manager validates the options, so a bad configuration fails the host's start.
        var manager = new DriverManager(driver, options, loggerFactory, timeProvider);
        await using (manager.ConfigureAwait(false))
        {
            await manager.RunAsync(stoppingToken).ConfigureAwait(false);
        }
    }
}
