using Conveyor.Driver.Sdk;
using Conveyor.Client;
using Conveyor.Driver.Sdk.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers Conveyor drivers and the Conveyor HTTP client with the Generic Host.</summary>
public static class ConveyorDriverServiceCollectionExtensions
{
    /// <summary>
    /// Runs <typeparamref name="TDriver"/> (registered as a singleton if it is not already) in a hosted
    /// <see cref="DriverManager"/> configured by <paramref name="configure"/>. Each call adds one manager, so one driver
    /// class can serve several driver names. Invalid options fail the host's start with a
    /// <see cref="DriverConfigurationException"/>.
    /// </summary>
    /// <remarks>
    /// A manager's shutdown waits up to <see cref="DriverOptions.FetchExpiry"/> for its pull requests to expire; a host
    /// running several drivers stops faster with <c>HostOptions.ServicesStopConcurrently</c> set.
    /// </remarks>
    public static IServiceCollection AddConveyorDriver<TDriver>(this IServiceCollection services, Action<DriverOptions> configure)
        where TDriver : class, IDriver
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        return services.AddDriverManager<TDriver>(_ =>
        {
            var options = new DriverOptions();
            configure(options);
            return options;
        });
    }

    /// <summary>
    /// Runs <typeparamref name="TDriver"/> in a hosted <see cref="DriverManager"/> whose options are bound from the
    /// configuration section <paramref name="configurationSection"/> (default <c>Conveyor:Driver</c>), then adjusted
    /// by <paramref name="configure"/>.
    /// </summary>
    public static IServiceCollection AddConveyorDriver<TDriver>(
        this IServiceCollection services,
        string configurationSection = DriverOptions.Section,
        Action<DriverOptions>? configure = null)
        where TDriver : class, IDriver
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentException.ThrowIfNullOrEmpty(configurationSection);
        return services.AddDriverManager<TDriver>(sp =>
        {
            var options = new DriverOptions();
            sp.GetRequiredService<IConfiguration>().GetSection(configurationSection).Bind(options);
            configure?.Invoke(options);
            return options;
        });
    }

    /// <summary>
    /// Registers <see cref="ConveyorClient"/> as a typed HTTP client for the Conveyor API at <paramref name="baseAddress"/>.
    /// </summary>
    public static IHttpClientBuilder AddConveyorClient(this IServiceCollection services, Uri baseAddress)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(baseAddress);
        return services.AddHttpClient<ConveyorClient>(client => client.BaseAddress = baseAddress);
    }

    private static IServiceCollection AddDriverManager<TDriver>(this IServiceCollection services, Func<IServiceProvider, DriverOptions> options)
        where TDriver : class, IDriver
    {
        services.TryAddSingleton<TDriver>();
        services.AddSingleton<IHostedService>(sp => new DriverHostedService(
            sp.GetRequiredService<TDriver>(),
            options(sp),
            sp.GetService<ILoggerFactory>(),
            sp.GetService<TimeProvider>()));
        return services;
    }
}
