using Conveyor.Testing;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Conveyor.EmbeddedApp.Tests;

/// <summary>
/// Hosts the sample app (its real <c>Program</c>) in memory. Everything it needs comes in as configuration, the way an
/// operator would set it: connection strings, Orleans ports and ids.
/// </summary>
public sealed class ShipyardFactory(IReadOnlyDictionary<string, string?> settings) : WebApplicationFactory<Program>
{
    /// <summary>Settings for an app on external servers, with free Orleans ports and ids no other host shares.</summary>
    public static Dictionary<string, string?> ExternalServers(string natsUrl, string redis) => new Dictionary<string, string?>(StringComparer.Ordinal)
    {
        ["ConnectionStrings:nats"] = natsUrl,
        ["ConnectionStrings:redis"] = redis,
    }.WithIsolatedSilo();

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        foreach (var (key, value) in settings)
        {
            builder.UseSetting(key, value);
        }

        builder.ConfigureLogging(logging => logging.ClearProviders().AddSimpleConsole().SetMinimumLevel(LogLevel.Warning));
        builder.ConfigureServices(services => services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(20)));
    }
}

internal static class SettingsExtensions
{
    /// <summary>Free silo and gateway ports and a unique service and cluster id.</summary>
    public static Dictionary<string, string?> WithIsolatedSilo(this Dictionary<string, string?> settings)
    {
        var id = "shipyard-" + Guid.NewGuid().ToString("N")[..8];
        settings["Conveyor:SiloPort"] = ServerProcess.FindFreePort().ToString(System.Globalization.CultureInfo.InvariantCulture);
        settings["Conveyor:GatewayPort"] = ServerProcess.FindFreePort().ToString(System.Globalization.CultureInfo.InvariantCulture);
        settings["Conveyor:ServiceId"] = id;
        settings["Conveyor:ClusterId"] = id;
        return settings;
    }
}
