using System.Net;
using System.Net.Http.Json;
using Conveyor.Api.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Shipyard.Deployments;

namespace Conveyor.EmbeddedApp.Tests;

/// <summary>The resource type and pipeline the app applies through the engine's grains when it starts.</summary>
[Collection(ShipyardCollection.Name)]
public sealed class SetupTests(ShipyardFixture fx)
{
    [Fact]
    public void The_engine_takes_its_servers_and_silo_identity_from_the_apps_configuration()
    {
        var options = fx.App.Services.GetRequiredService<ConveyorOptions>();

        Assert.Equal(ConveyorMode.SingleNode, options.Mode);
        Assert.StartsWith("nats://127.0.0.1:", options.NatsUrl, StringComparison.Ordinal);
        Assert.NotEqual("nats://127.0.0.1:4222", options.NatsUrl);
        Assert.StartsWith("shipyard-", options.ServiceId, StringComparison.Ordinal);
        Assert.NotEqual(11111, options.SiloPort);
        Assert.Equal("/conveyor", fx.App.Services.GetRequiredService<ConveyorApiSettings>().Prefix);
    }

    [Fact]
    public async Task Start_applies_the_resource_definition_and_the_build_then_deploy_pipeline()
    {
        var definition = await fx.GetJsonAsync("/conveyor/resource-definitions/service");
        var pipeline = await fx.GetJsonAsync("/conveyor/pipelines/deploy");

        Assert.Equal("service", definition.GetProperty("name").GetString());
        Assert.Equal(["image", "service"], definition.GetProperty("schema").GetProperty("required").EnumerateArray().Select(e => e.GetString()).Order(StringComparer.Ordinal));
        Assert.Equal("service", pipeline.GetProperty("resource").GetString());
        Assert.Equal(["build", "deploy"], pipeline.GetProperty("steps").EnumerateArray().Select(s => s.GetProperty("driver").GetString()));
    }

    [Fact]
    public async Task Applying_again_changes_nothing_and_repairs_a_pipeline_edited_through_the_api()
    {
        var setup = fx.App.Services.GetServices<IHostedService>().OfType<DeploymentPipelineSetup>().Single();
        var revision = (await fx.GetJsonAsync("/conveyor/pipelines/deploy")).GetProperty("revision").GetInt32();

        await setup.StartAsync(CancellationToken.None);
        Assert.Equal(revision, (await fx.GetJsonAsync("/conveyor/pipelines/deploy")).GetProperty("revision").GetInt32());

        using (var edit = await fx.Http.PutAsJsonAsync("/conveyor/pipelines/deploy", new
        {
            name = "deploy",
            resource = "service",
            steps = new[] { new { id = "deploy", name = "deploy", driver = "deploy" } },
        }))
        {
            Assert.Equal(HttpStatusCode.OK, edit.StatusCode);
        }

        await setup.StartAsync(CancellationToken.None);
        var repaired = await fx.GetJsonAsync("/conveyor/pipelines/deploy");
        Assert.Equal(revision + 2, repaired.GetProperty("revision").GetInt32());
        Assert.Equal(["build", "deploy"], repaired.GetProperty("steps").EnumerateArray().Select(s => s.GetProperty("id").GetString()));
    }
}
