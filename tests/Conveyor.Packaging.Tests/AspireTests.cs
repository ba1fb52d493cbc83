using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;

namespace Conveyor.Packaging.Tests;

/// <summary>
/// The Aspire hosting integration's application model, built as an AppHost builds it and read back in publish mode
/// (what `aspire publish` would write): no container runs, since no image can be pulled here.
/// </summary>
public sealed class AspireTests
{
    private static IDistributedApplicationBuilder Builder() =>
        DistributedApplication.CreateBuilder(new DistributedApplicationOptions { Args = ["--operation", "publish", "--publisher", "manifest"], DisableDashboard = true });

    // The publish-mode readers are marked obsolete in favour of ExecutionConfigurationBuilder, which needs a running
    // app's services; for a model that is only built they still give exactly what a manifest would hold.
#pragma warning disable CS0618
    private static async Task<Dictionary<string, string?>> EnvironmentOf(IResourceWithEnvironment resource) =>
        (await resource.GetEnvironmentVariableValuesAsync(DistributedApplicationOperation.Publish)).ToDictionary(e => e.Key, e => (string?)e.Value);

    private static async Task<string[]> ArgumentsOf(IResourceWithArgs resource) => await resource.GetArgumentValuesAsync(DistributedApplicationOperation.Publish);
#pragma warning restore CS0618

    [Fact]
    public async Task AddConveyor_runs_the_silo_image_in_cluster_mode_on_its_own_redis_and_nats_with_a_secret_bootstrap_key()
    {
        var builder = Builder();
        var conveyor = builder.AddConveyor("conveyor");

        var resources = builder.Resources.ToDictionary(r => r.Name);
        Assert.IsType<RedisResource>(resources["conveyor-redis"]);
        var nats = Assert.IsType<ConveyorNatsResource>(resources["conveyor-nats"]);
        var key = Assert.IsType<ParameterResource>(resources["conveyor-bootstrap-key"]);
        Assert.True(key.Secret);

        var image = Assert.Single(conveyor.Resource.Annotations.OfType<ContainerImageAnnotation>());
        Assert.Equal(("conveyor-silo", "latest"), (image.Image, image.Tag));
        var http = Assert.Single(conveyor.Resource.Annotations.OfType<EndpointAnnotation>());
        Assert.Equal(("http", 8080), (http.Name, http.TargetPort));
        Assert.Contains(conveyor.Resource.Annotations.OfType<HealthCheckAnnotation>(), _ => true);
        Assert.Equal(["conveyor-redis", "conveyor-nats"], conveyor.Resource.Annotations.OfType<WaitAnnotation>().Select(w => w.Resource.Name));

        var environment = await EnvironmentOf(conveyor.Resource);
        Assert.Equal("Cluster", environment["Conveyor__Mode"]);
        Assert.Equal("{conveyor-redis.connectionString}", environment["ConnectionStrings__redis"]);
        Assert.Equal("{conveyor-nats.connectionString}", environment["ConnectionStrings__nats"]);
        Assert.Equal("{conveyor-bootstrap-key.value}", environment["Conveyor__Auth__BootstrapKey"]);

        // NATS with JetStream, its client port behind the connection string.
        var args = await ArgumentsOf(nats);
        Assert.Contains("-js", args);
        Assert.Contains(nats.Annotations.OfType<EndpointAnnotation>(), e => e.Name == "tcp" && e.TargetPort == 4222);
        Assert.StartsWith("nats://{conveyor-nats.bindings.tcp.", nats.ConnectionStringExpression.ValueExpression, StringComparison.Ordinal);
        Assert.Contains("{conveyor.bindings.http.url}", conveyor.Resource.ConnectionStringExpression.ValueExpression, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WithConveyorServers_gives_an_embedding_app_or_driver_the_connection_strings_conveyor_reads()
    {
        var builder = Builder();
        var redis = builder.AddRedis("redis");
        var nats = builder.AddConveyorNats("nats");
        var app = builder.AddExecutable("app", "dotnet", ".", "MyApp.dll").WithConveyorServers(redis, nats);

        var environment = await EnvironmentOf(app.Resource);
        Assert.Equal("{redis.connectionString}", environment["ConnectionStrings__redis"]);
        Assert.Equal("{nats.connectionString}", environment["ConnectionStrings__nats"]);
        Assert.Equal(["redis", "nats"], app.Resource.Annotations.OfType<WaitAnnotation>().Select(w => w.Resource.Name));
    }
}
