using Conveyor.Contracts;
using Conveyor.Driver.Sdk.Tests.Infrastructure;
using Conveyor.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Conveyor.Driver.Sdk.Tests;

public sealed class HostingTests(JetStreamFixture nats) : IClassFixture<JetStreamFixture>
{
    [Fact]
    public async Task AddConveyorDriver_runs_the_driver_for_the_lifetime_of_the_host()
    {
        var runId = Guid.NewGuid().ToString();
        await using var results = await SubjectRecorder.StartAsync(nats.Connection, Subjects.DriverResult);
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddConveyorDriver<HostedEchoDriver>(o =>
        {
            o.Name = "hosted";
            o.NatsUrl = nats.Url;
            o.FetchExpiry = TimeSpan.FromSeconds(1);
        });
        using var host = builder.Build();

        await host.StartAsync();
        await Eventually.TrueAsync(() => ConsumerExistsAsync("hosted-steps-app"), Deadlines.Event, "the hosted manager creates its consumers");
        await Wire.PublishAsync(nats.JetStream, "drivers.hosted.resources.app", Wire.DriverMessageJson(runId, "app", "web"));
        await Eventually.TrueAsync(() => results.ForRun(runId).Count == 1, Deadlines.Event, "the hosted driver publishes a result");
        await host.StopAsync();

        Assert.Equal("hosted says hi", results.ForRun(runId)[0].Json.GetProperty("driverresult").GetProperty("message").GetString());
    }

    [Fact]
    public async Task Options_are_bound_from_the_Conveyor_Driver_section()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Conveyor:Driver:Name"] = "configured",
            ["Conveyor:Driver:Resources:0"] = "lib",
            ["Conveyor:Driver:NatsUrl"] = nats.Url,
            ["Conveyor:Driver:MaxConcurrency"] = "2",
            ["Conveyor:Driver:FetchExpiry"] = "00:00:01",
        });
        builder.Services.AddConveyorDriver<HostedEchoDriver>();
        using var host = builder.Build();

        await host.StartAsync();
        await Eventually.TrueAsync(() => ConsumerExistsAsync("configured-resources-lib"), Deadlines.Event, "the configured consumers exist");
        await host.StopAsync();

        var info = (await nats.JetStream.GetConsumerAsync(Subjects.MessagesStream, "configured-resources-lib")).Info;
        Assert.Equal(2, info.Config.MaxAckPending);
        Assert.Equal("resources.lib", info.Config.FilterSubject);
    }

    [Fact]
    public async Task Invalid_options_fail_the_host_start()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddConveyorDriver<HostedEchoDriver>(o => o.Name = "Not Valid");
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<DriverConfigurationException>(() => host.StartAsync());

        Assert.Equal("Name", error.Field);
    }

    private async Task<bool> ConsumerExistsAsync(string name)
    {
        try
        {
            await nats.JetStream.GetConsumerAsync(Subjects.MessagesStream, name);
            return true;
        }
        catch (NATS.Client.JetStream.NatsJSApiException)
        {
            return false;
        }
    }

    private sealed class HostedEchoDriver : IDriver
    {
        public string Name => "hosted";

        public IReadOnlyCollection<string> Resources => ["app"];

        public Task<DriverResult> ReconcileAsync(DriverEvent driverEvent, DriverContext context, CancellationToken cancellationToken) =>
            Task.FromResult(DriverResult.Ok($"{context.DriverName} says hi"));
    }
}
