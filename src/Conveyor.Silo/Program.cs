var builder = WebApplication.CreateBuilder(args);
builder.AddConveyor().AddPrometheusEndpoint();

var app = builder.Build();
app.MapConveyorApi();
app.Run();

/// <summary>Entry point; public so integration tests can host it with <c>WebApplicationFactory</c>.</summary>
public partial class Program;
