// Serves one or more Conveyor driver names with the echo driver, e.g.
//   dotnet run --project samples/EchoDriver -- --drivers build,test,deploy --resources app --nats nats://127.0.0.1:4222 --fail deploy
using Conveyor.Samples.Echo;
using Conveyor.Driver.Sdk;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

// appsettings.json sits next to the binary, wherever the sample is started from.
var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = args, ContentRootPath = AppContext.BaseDirectory });
var settings = EchoSettings.From(builder.Configuration);
builder.Services.AddSingleton(settings);
builder.Services.AddSingleton(TimeProvider.System);
// Each driver's shutdown waits for its outstanding pull requests to expire; stop them side by side.
builder.Services.Configure<HostOptions>(o => o.ServicesStopConcurrently = true);
foreach (var name in settings.Drivers)
{
    builder.Services.AddConveyorDriver<EchoDriver>(DriverOptions.Section, options =>
    {
        options.Name = name;
        options.Resources = [.. settings.Resources];
        options.NatsUrl = settings.NatsUrl;
    });
}

Console.WriteLine($"echo driver serving [{string.Join(", ", settings.Drivers)}] for resources [{string.Join(", ", settings.Resources)}] on {settings.NatsUrl}");
await builder.Build().RunAsync();
