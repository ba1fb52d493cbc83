// Runs shell commands for Conveyor pipeline steps, e.g.
//   dotnet run --project samples/ShellDriver -- --Conveyor:Driver:Name=shell --Conveyor:Driver:Resources:0=app
// and a pipeline step {"id":"test","driver":"shell","params":{"command":"make test"}}.
using Conveyor.Driver.Sdk;
using Conveyor.Samples.Shell;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

var builder = Host.CreateApplicationBuilder(args);
builder.Services.AddSingleton(TimeProvider.System);
var name = builder.Configuration["Conveyor:Driver:Name"] ?? "shell";
var resources = builder.Configuration.GetSection("Conveyor:Driver:Resources").Get<string[]>() ?? ["app"];
builder.Services.AddSingleton(sp => new ShellDriver(name, resources, sp.GetRequiredService<TimeProvider>()));
builder.Services.AddConveyorDriver<ShellDriver>(DriverOptions.Section, o =>
{
    o.Name = name;
    o.Resources = [.. resources];
});
await builder.Build().RunAsync();
