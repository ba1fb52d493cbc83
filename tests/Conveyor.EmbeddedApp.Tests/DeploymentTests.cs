using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Conveyor.Testing;

namespace Conveyor.EmbeddedApp.Tests;

/// <summary>The app's own deployments feature, carried out by the embedded engine and SDK drivers.</summary>
[Collection(ShipyardCollection.Name)]
public sealed class DeploymentTests(ShipyardFixture fx)
{
    private static readonly TimeSpan RunTimeout = Deadlines.Event;

    [Fact]
    public async Task Posting_a_deployment_runs_the_apps_pipeline_to_success_through_the_embedded_engine()
    {
        var deployment = await ShipyardFixture.DeployAsync(fx.Http, "web", "nginx:1.27");
        var id = deployment.GetProperty("id").GetString()!;
        var runId = deployment.GetProperty("runId").GetString()!;
        Assert.Matches("^web-[0-9a-f]{8}$", id);
        Assert.Equal("web", deployment.GetProperty("service").GetString());
        Assert.Equal("nginx:1.27", deployment.GetProperty("image").GetString());
        Assert.Equal($"/conveyor/runs/{runId}", deployment.GetProperty("run").GetString());

        var run = await ShipyardFixture.WaitForRunAsync(fx.Http, runId, RunTimeout);

        Assert.Equal("Succeeded", run.GetProperty("status").GetString());
        Assert.Equal("deploy", run.GetProperty("pipeline").GetString());
        Assert.Equal(id, run.GetProperty("resourceName").GetString());
        var steps = run.GetProperty("steps").EnumerateArray().ToList();
        Assert.Equal(["build", "deploy"], steps.Select(s => s.GetProperty("id").GetString()));
        Assert.All(steps, s => Assert.Equal("Succeeded", s.GetProperty("status").GetString()));
        Assert.Equal("built nginx:1.27", steps[0].GetProperty("message").GetString());
        Assert.Equal("registry.local/nginx:1.27", steps[0].GetProperty("data").GetProperty("image").GetString());
        Assert.Equal($"https://{id}.apps.local", steps[1].GetProperty("data").GetProperty("url").GetString());

        var events = fx.Drivers.ForRun(runId).ToList();
        Assert.Equal(["build", "deploy"], events.Select(e => e.Driver));
        Assert.Equal(["build", "deploy"], events.Select(e => e.Event.StepId));
        Assert.Equal(["create", "process"], events.Select(e => e.Event.Event));
        Assert.All(events, e => Assert.Equal(id, e.Event.Resource.Name));
        Assert.All(events, e => Assert.Equal("nginx:1.27", e.Event.Resource.Spec!.Value.GetProperty("image").GetString()));

        var status = await fx.GetJsonAsync($"/deployments/{id}");
        Assert.Equal("Succeeded", status.GetProperty("status").GetString());
        Assert.Equal(runId, status.GetProperty("runId").GetString());
        var resource = await fx.GetJsonAsync($"/conveyor/resources/service/{id}");
        Assert.Contains("driverresults.deploy", resource.GetProperty("metadata").EnumerateObject().Select(p => p.Name));
    }

    [Fact]
    public async Task Each_deployment_of_a_service_is_its_own_resource_and_run()
    {
        var first = await ShipyardFixture.DeployAsync(fx.Http, "api", "api:1");
        var second = await ShipyardFixture.DeployAsync(fx.Http, "api", "api:2");

        Assert.NotEqual(first.GetProperty("id").GetString(), second.GetProperty("id").GetString());
        var runs = await Task.WhenAll(
            ShipyardFixture.WaitForRunAsync(fx.Http, first.GetProperty("runId").GetString()!, RunTimeout),
            ShipyardFixture.WaitForRunAsync(fx.Http, second.GetProperty("runId").GetString()!, RunTimeout));
        Assert.All(runs, r => Assert.Equal("Succeeded", r.GetProperty("status").GetString()));
        var images = fx.Drivers.ForRun(second.GetProperty("runId").GetString()!).Select(e => e.Event.Resource.Spec!.Value.GetProperty("image").GetString());
        Assert.All(images, i => Assert.Equal("api:2", i));
    }

    [Fact]
    public async Task Invalid_deployment_gets_the_apps_own_validation_problem_and_creates_nothing()
    {
        using var response = await fx.Http.PostAsJsonAsync("/deployments", new { service = "Web Site", image = "" });

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.DoesNotContain("urn:conveyor", problem.GetProperty("type").GetString(), StringComparison.Ordinal);
        Assert.False(problem.TryGetProperty("error", out _));
        Assert.Equal(["image", "service"], problem.GetProperty("errors").EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Unknown_deployment_is_not_found()
    {
        using var response = await fx.Http.GetAsync("/deployments/web-00000000");

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }
}
