using System.Net;
using System.Net.Sockets;
using Conveyor.Api.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Conveyor.Bench;

/// <summary>A single-node engine with its own nats-server and redis-server in a temporary directory.</summary>
internal sealed class BenchEngine : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly string _data;

    private BenchEngine(WebApplication app, string data, Uri address, string natsUrl)
    {
        _app = app;
        _data = data;
        Address = address;
        NatsUrl = natsUrl;
    }

    public Uri Address { get; }

    public string NatsUrl { get; }

    public static async Task<BenchEngine> StartAsync()
    {
        var data = Directory.CreateTempSubdirectory("conveyor-bench-").FullName;
        var natsPort = FreePort();
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory, EnvironmentName = "Benchmark" });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole().SetMinimumLevel(LogLevel.Warning);
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.AddConveyor(o =>
        {
            o.DataDirectory = data;
            o.LocalNatsPort = natsPort;
            o.SiloPort = FreePort();
            o.GatewayPort = FreePort();
        });
        var app = builder.Build();
        app.MapConveyorApi();
        await app.StartAsync();
        var address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        return new BenchEngine(app, data, address, $"nats://127.0.0.1:{natsPort}");
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        Directory.Delete(_data, recursive: true);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
