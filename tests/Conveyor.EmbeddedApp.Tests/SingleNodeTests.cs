using Conveyor.Testing;

namespace Conveyor.EmbeddedApp.Tests;

/// <summary>Without connection strings the app runs as a single node that supervises its own servers.</summary>
public sealed class SingleNodeTests
{
    [Fact]
    public async Task Without_connection_strings_the_app_starts_its_own_servers_and_deploys()
    {
        var dataDirectory = Directory.CreateTempSubdirectory("shipyard-single-node-").FullName;
        var natsPort = ServerProcess.FindFreePort();
        try
        {
            var settings = new Dictionary<string, string?>(StringComparer.Ordinal)
            {
                ["Conveyor:DataDirectory"] = dataDirectory,
                ["Conveyor:LocalNatsPort"] = natsPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            }.WithIsolatedSilo();
            await using (var app = new ShipyardFactory(settings))
            {
                using var http = app.CreateClient();
                await using var drivers = await DeploymentDrivers.StartAsync($"nats://127.0.0.1:{natsPort}");

                var deployment = await ShipyardFixture.DeployAsync(http, "web", "nginx:1.27");
                var run = await ShipyardFixture.WaitForRunAsync(http, deployment.GetProperty("runId").GetString()!, Deadlines.Event);

                Assert.Equal("Succeeded", run.GetProperty("status").GetString());
                Assert.True(Directory.Exists(Path.Combine(dataDirectory, "nats")), "the supervised nats-server keeps its data in the data directory");
                Assert.True(Directory.Exists(Path.Combine(dataDirectory, "redis")), "the supervised redis-server keeps its data in the data directory");
            }
        }
        finally
        {
            Directory.Delete(dataDirectory, recursive: true);
        }
    }
}
