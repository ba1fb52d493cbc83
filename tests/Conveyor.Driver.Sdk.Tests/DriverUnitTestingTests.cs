using Conveyor.Contracts;
using Conveyor.Driver.Sdk.Tests.Infrastructure;
using Microsoft.Extensions.Logging;

namespace Conveyor.Driver.Sdk.Tests;

public sealed class DriverUnitTestingTests
{
    [Fact]
    public async Task A_reconcile_can_be_unit_tested_with_a_sink_logger()
    {
        var entries = new List<LogEntry>();
        var logger = DriverLogger.Create("run-1", "builder", (entry, _) =>
        {
            entries.Add(entry);
            return Task.CompletedTask;
        }, new Dictionary<string, string> { ["step"] = "build" });
        var resource = new Resource { Name = "web", ResourceType = "app" };
        var driverEvent = new DriverEvent
        {
            Event = EventNames.Create,
            RunId = "run-1",
            MessageId = MessageIds.NewId(),
            Payload = ConveyorJson.SerializeResource(resource),
            Resource = resource,
            Subject = "drivers.builder.resources.app",
            StepId = "build",
        };
        var driver = new TestDriver("builder", async (e, c, ct) =>
        {
            await c.Logger.LogAsync("building " + e.Resource.Name, cancellationToken: ct);
            c.Logger.AsLogger().LogError("and a warning via ILogger");
            await c.Logger.FlushAsync();
            return DriverResult.Ok("built");
        });

        var result = await driver.ReconcileAsync(driverEvent, new DriverContext("builder", driverEvent, logger), CancellationToken.None);

        Assert.True(result.Success);
        Assert.Equal(["building web", "and a warning via ILogger"], entries.Select(e => e.Message));
        Assert.All(entries, e => Assert.Equal("build", e.Labels!["step"]));
        Assert.Equal("error", entries[1].Labels!["level"]);
    }
}
