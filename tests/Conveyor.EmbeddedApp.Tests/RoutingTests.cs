using System.Net;
using System.Text.Json;

namespace Conveyor.EmbeddedApp.Tests;

/// <summary>Conveyor lives under <c>/conveyor</c> and leaves the rest of the app alone.</summary>
[Collection(ShipyardCollection.Name)]
public sealed class RoutingTests(ShipyardFixture fx)
{
    [Fact]
    public async Task The_apps_home_page_is_its_own()
    {
        using var response = await fx.Http.GetAsync("/");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
        Assert.StartsWith("Shipyard:", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unknown_route_outside_the_prefix_is_a_plain_404_not_a_conveyor_problem()
    {
        using var response = await fx.Http.GetAsync("/no-such-page");

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Null(response.Content.Headers.ContentType);
        Assert.Empty(await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Unknown_route_under_the_prefix_is_a_conveyor_problem()
    {
        using var response = await fx.Http.GetAsync("/conveyor/no-such-page");

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("urn:conveyor:problem:not-found", problem.GetProperty("type").GetString());
        Assert.Equal("Cannot GET /conveyor/no-such-page", problem.GetProperty("error").GetString());
    }

    [Fact]
    public async Task Conveyor_health_and_readiness_answer_under_the_prefix()
    {
        using var health = await fx.Http.GetAsync("/conveyor/health");
        using var ready = await fx.Http.GetAsync("/conveyor/readyz");
        using var unprefixed = await fx.Http.GetAsync("/health");

        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, unprefixed.StatusCode);
    }

    [Fact]
    public async Task Engine_api_is_served_under_the_prefix_only()
    {
        using var prefixed = await fx.Http.GetAsync("/conveyor/pipelines/deploy");
        using var unprefixed = await fx.Http.GetAsync("/pipelines/deploy");

        Assert.Equal(HttpStatusCode.OK, prefixed.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, unprefixed.StatusCode);
        Assert.Null(unprefixed.Content.Headers.ContentType);
    }
}
