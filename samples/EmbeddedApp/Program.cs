// Shipyard: a small deployment portal with its own endpoints, which embeds the Conveyor engine in its process.
//   dotnet run --project samples/EmbeddedApp
//     single node: starts and supervises its own nats-server (port 4222) and redis-server, data in shipyard-data/
//   dotnet run --project samples/EmbeddedApp -- --ConnectionStrings:nats=nats://127.0.0.1:4222 --ConnectionStrings:redis=127.0.0.1:6379
//     on servers you run yourself
using Shipyard;
using Shipyard.Deployments;

var builder = WebApplication.CreateBuilder(args);
builder.AddConveyor();       // the engine: an Orleans silo with Conveyor's grains, in this process
builder.AddDeployments();    // this app's feature; registered after AddConveyor, so its setup runs once the silo is up

var app = builder.Build();
app.MapGet("/", Banner.Get).WithName("Banner").WithSummary("What this app is");
app.MapDeploymentsApi();
app.MapConveyorApi("/conveyor");
app.Run();

/// <summary>Entry point; public so tests can host the app with <c>WebApplicationFactory</c>.</summary>
public partial class Program;
