using Conveyor.Contracts;
using Conveyor.Testing;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Conveyor.Driver.Sdk.Tests.Infrastructure;

/// <summary>A nats-server with the original's three streams (contract §3.2), created the way the original does.</summary>
public sealed class JetStreamFixture : NatsFixture
{
    private NatsConnection? _connection;

    /// <summary>A connection for the test's own publishing and observing.</summary>
    public NatsConnection Connection => _connection ?? throw new InvalidOperationException("Not initialized.");

    public NatsJSContext JetStream => new(Connection);

    public static IEnumerable<StreamConfig> StreamConfigs =>
    [
        new(Subjects.MessagesStream, ["resources.>", "events.>", "drivers.>"])
        {
            Retention = StreamConfigRetention.Interest,
            Storage = StreamConfigStorage.File,
        },
        new(Subjects.PipelineEngineStream, ["pipelines.>"])
        {
            Retention = StreamConfigRetention.Workqueue,
            Storage = StreamConfigStorage.File,
        },
        new(Subjects.LogsEngineStream, ["logs.>"])
        {
            Retention = StreamConfigRetention.Workqueue,
            Storage = StreamConfigStorage.File,
        },
    ];

    public NatsConnection CreateConnection() => new(NatsOpts.Default with { Url = Url, Name = "conveyor-tests" });

    protected override async Task OnStartedAsync()
    {
        _connection = CreateConnection();
        await _connection.ConnectAsync();
        var js = new NatsJSContext(_connection);
        foreach (var config in StreamConfigs)
        {
            await js.CreateOrUpdateStreamAsync(config);
        }
    }

    protected override async Task OnStoppingAsync()
    {
        if (_connection is { } connection)
        {
            _connection = null;
            await connection.DisposeAsync();
        }
    }
}
