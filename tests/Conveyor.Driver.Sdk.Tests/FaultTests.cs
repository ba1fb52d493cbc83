using Conveyor.Contracts;
using Conveyor.Driver.Sdk.Tests.Infrastructure;
using Conveyor.Testing;
using NATS.Client.Core;
using NATS.Client.JetStream;
using Xunit.Abstractions;

namespace Conveyor.Driver.Sdk.Tests;

/// <summary>Restarts and reconfigures servers, so every test here starts its own.</summary>
public sealed class FaultTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Deadline = Deadlines.Event;

    [Fact]
    public async Task Manager_resumes_after_a_nats_server_restart()
    {
        await using var server = await NatsServerProcess.StartNewAsync();
        await CreateStreamsAsync(server.Url);
        var name = Wire.UniqueName("survivor");
        var driver = new TestDriver(name, "app");
        await using var manager = await RunningManager.StartAsync(driver, Options(server.Url, name), new XunitLoggerFactory(output));

        await server.RestartAsync();

        var runId = Guid.NewGuid().ToString();
        await using var connection = new NatsConnection(NatsOpts.Default with { Url = server.Url });
        await using var results = await SubjectRecorder.StartAsync(connection, Subjects.DriverResult);
        await Wire.PublishAsync(new NatsJSContext(connection), $"drivers.{name}.resources.app", Wire.DriverMessageJson(runId, "app", "x"));
        await Eventually.TrueAsync(() => results.ForRun(runId).Count == 1, Deadline, "the manager reconnects and processes new work");
    }

    [Fact]
    public async Task Deleted_consumer_is_created_again()
    {
        await using var server = await NatsServerProcess.StartNewAsync();
        await CreateStreamsAsync(server.Url);
        var name = Wire.UniqueName("phoenix");
        var driver = new TestDriver(name, "app");
        await using var manager = await RunningManager.StartAsync(driver, Options(server.Url, name), new XunitLoggerFactory(output));
        await using var connection = new NatsConnection(NatsOpts.Default with { Url = server.Url });
        var js = new NatsJSContext(connection);
        var consumer = DriverManager.StepsConsumerName(name, "app");

        await js.DeleteConsumerAsync(Subjects.MessagesStream, consumer);
        await Eventually.TrueAsync(() => ExistsAsync(js, consumer), Deadline, "the manager creates its consumer again");

        var runId = Guid.NewGuid().ToString();
        await using var results = await SubjectRecorder.StartAsync(connection, Subjects.DriverResult);
        await Wire.PublishAsync(js, $"drivers.{name}.resources.app", Wire.DriverMessageJson(runId, "app", "x"));
        await Eventually.TrueAsync(() => results.ForRun(runId).Count == 1, Deadline, "work flows through the new consumer");
    }

    private static DriverOptions Options(string url, string name) => new()
    {
        Name = name,
        NatsUrl = url,
        FetchExpiry = TimeSpan.FromSeconds(1),
    };

    private static async Task CreateStreamsAsync(string url)
    {
        await using var connection = new NatsConnection(NatsOpts.Default with { Url = url });
        var js = new NatsJSContext(connection);
        foreach (var config in JetStreamFixture.StreamConfigs)
        {
            await js.CreateOrUpdateStreamAsync(config);
        }
    }

    private static async Task<bool> ExistsAsync(NatsJSContext js, string consumer)
    {
        try
        {
            await js.GetConsumerAsync(Subjects.MessagesStream, consumer);
            return true;
        }
        catch (NatsJSApiException)
        {
            return false;
        }
    }
}
