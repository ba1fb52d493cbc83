using System.Net.Sockets;
using Conveyor.Driver.Sdk.Tests.Infrastructure;
using Conveyor.Testing;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Conveyor.Driver.Sdk.Tests;

public sealed class ServerProcessTests
{
    [Fact]
    public async Task Nats_server_restarts_on_the_same_port_and_keeps_its_streams()
    {
        await using var server = await NatsServerProcess.StartNewAsync();
        await using (var connection = new NatsConnection(NatsOpts.Default with { Url = server.Url }))
        {
            await new NatsJSContext(connection).CreateOrUpdateStreamAsync(JetStreamFixture.StreamConfigs.First());
        }

        var port = server.Port;
        await server.RestartAsync();

        Assert.Equal(port, server.Port);
        Assert.Equal($"nats://127.0.0.1:{port}", server.Url);
        await using var again = new NatsConnection(NatsOpts.Default with { Url = server.Url });
        var stream = await new NatsJSContext(again).GetStreamAsync("messages");
        Assert.Equal("messages", stream.Info.Config.Name);
    }

    [Fact]
    public async Task Stopped_server_no_longer_accepts_connections_and_dispose_removes_its_directory()
    {
        var server = await NatsServerProcess.StartNewAsync();
        var directory = server.StoreDir;
        Assert.NotNull(server.ProcessId);

        await server.StopAsync();

        Assert.Null(server.ProcessId);
        using var client = new TcpClient();
        await Assert.ThrowsAnyAsync<SocketException>(() => client.ConnectAsync("127.0.0.1", server.Port));
        await server.DisposeAsync();
        Assert.False(Directory.Exists(directory));
    }

    [Fact]
    public async Task Redis_server_listens_on_its_connection_string()
    {
        await using var server = await RedisServerProcess.StartNewAsync();
        using var client = new TcpClient();

        await client.ConnectAsync("127.0.0.1", server.Port);
        var stream = client.GetStream();
        await stream.WriteAsync("PING\r\n"u8.ToArray());
        var buffer = new byte[16];
        var read = await stream.ReadAsync(buffer);

        Assert.Equal("+PONG\r\n", System.Text.Encoding.ASCII.GetString(buffer, 0, read));
        Assert.Equal($"127.0.0.1:{server.Port}", server.ConnectionString);
    }
}
