using System.Net.Http.Json;
using System.Text.Json;
using Conveyor.Api.Hosting;
using Conveyor.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Conveyor.IntegrationTests;

/// <summary>A real Conveyor host (silo + HTTP API on Kestrel) built exactly as an embedding app would build it.</summary>
public sealed class ConveyorTestHost : IAsyncDisposable
{
    private readonly WebApplication _app;

    private ConveyorTestHost(WebApplication app, Uri address)
    {
        _app = app;
        Address = address;
        Http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(60) };
    }

    public Uri Address { get; }

    public HttpClient Http { get; }

    public IServiceProvider Services => _app.Services;

    /// <summary>
    /// Starts a host. Its Orleans ports are chosen free just before the silo binds them; on a busy machine another
    /// process can take one in between, and then the host is built again on new ports.
    /// </summary>
    public static async Task<ConveyorTestHost> StartAsync(
        Action<ConveyorOptions> configure,
        IDictionary<string, string?>? settings = null,
        Action<WebApplicationBuilder>? configureBuilder = null,
        Action<WebApplication>? configureApp = null)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await StartOnceAsync(configure, settings, configureBuilder, configureApp);
            }
            catch (Exception ex) when (attempt < 5 && PortTaken(ex))
            {
            }
        }
    }

    private static bool PortTaken(Exception? ex)
    {
        for (; ex is not null; ex = ex.InnerException)
        {
            if (ex is System.Net.Sockets.SocketException { SocketErrorCode: System.Net.Sockets.SocketError.AddressAlreadyInUse })
            {
                return true;
            }

            if (ex is AggregateException aggregate && aggregate.InnerExceptions.Any(PortTaken))
            {
                return true;
            }
        }

        return false;
    }

    private static async Task<ConveyorTestHost> StartOnceAsync(
        Action<ConveyorOptions> configure,
        IDictionary<string, string?>? settings,
        Action<WebApplicationBuilder>? configureBuilder,
        Action<WebApplication>? configureApp)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            EnvironmentName = "Testing",
            ContentRootPath = AppContext.BaseDirectory,
        });
        // Schedule tests fire every second or two so they end quickly; a test's own settings may set the limit back.
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["Conveyor:Limits:MinScheduleInterval"] = "00:00:00" });
        if (settings is not null)
        {
            builder.Configuration.AddInMemoryCollection(settings);
        }

        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole().SetMinimumLevel(LogLevel.Warning);
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(20));
        builder.AddConveyor(o =>
        {
            o.SiloPort = ServerProcess.FindFreePort();
            o.GatewayPort = ServerProcess.FindFreePort();
            configure(o);
        }).AddPrometheusEndpoint();
        configureBuilder?.Invoke(builder);
        var app = builder.Build();
        app.MapConveyorApi();
        configureApp?.Invoke(app);
        try
        {
            await app.StartAsync();
        }
        catch
        {
            try
            {
                await app.StopAsync();
            }
            catch (InvalidOperationException)
            {
                // A silo whose start failed refuses to stop ("not in the Running state"); the start failure is the news.
            }
            finally
            {
                await app.DisposeAsync();
            }

            throw;
        }

        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new ConveyorTestHost(app, new Uri(address));
    }

    /// <summary>A host on external (fixture) servers; the service id isolates its state in the shared Redis.</summary>
    public static Task<ConveyorTestHost> StartAsync(
        string natsUrl,
        string redis,
        string serviceId,
        IDictionary<string, string?>? settings = null,
        Action<WebApplicationBuilder>? configureBuilder = null,
        Action<WebApplication>? configureApp = null) =>
        StartAsync(
            o =>
            {
                o.NatsUrl = natsUrl;
                o.RedisConnectionString = redis;
                o.ServiceId = serviceId;
                o.ClusterId = serviceId;
            },
            settings,
            configureBuilder,
            configureApp);

    public async Task<JsonElement> PostJsonAsync(string path, object body, int expectedStatus = 201)
    {
        using var response = await Http.PostAsJsonAsync(path, body);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == expectedStatus, $"POST {path}: expected {expectedStatus}, got {(int)response.StatusCode}: {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    public async Task<JsonElement> GetJsonAsync(string path)
    {
        using var response = await Http.GetAsync(path);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"GET {path}: {(int)response.StatusCode}: {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    /// <summary>Polls a run until it reaches a terminal status.</summary>
    public async Task<JsonElement> WaitForRunAsync(string runId, TimeSpan timeout)
    {
        JsonElement run = default;
        await Eventually.TrueAsync(
            async () =>
            {
                run = await GetJsonAsync($"/runs/{runId}");
                return run.GetProperty("status").GetString() is "Succeeded" or "Failed" or "Cancelled" or "TimedOut";
            },
            timeout,
            $"run {runId} should finish");
        return run;
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
