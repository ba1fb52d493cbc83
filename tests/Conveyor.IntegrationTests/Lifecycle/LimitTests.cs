using System.Net.Http.Json;
using System.Text.Json;

namespace Conveyor.IntegrationTests.Lifecycle;

/// <summary>Every limit refuses with a problem that names its setting, and stores nothing.</summary>
[Collection(LifecycleCollection.Name)]
public sealed class LimitTests(LifecycleFixture fx)
{
    private static async Task<JsonElement> ProblemAsync(HttpResponseMessage response, int status, string type, string field, string limit, string value)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == status, $"expected {status}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonDocument.Parse(text).RootElement;
        Assert.Equal("urn:conveyor:problem:" + type, problem.GetProperty("type").GetString());
        Assert.Equal(limit, problem.GetProperty("limit").GetString());
        Assert.Equal(value, problem.GetProperty("limitValue").GetString());
        Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), $"the problem names {field}: {text}");
        Assert.Contains(limit, problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        return problem;
    }

    private async Task<string> TypeAsync()
    {
        var type = LifecycleFixture.Unique("lim");
        await fx.Host.PostJsonAsync("/resource-definitions", new { name = type, version = "1", schema = new { type = "object" } });
        return type;
    }

    [Fact]
    public async Task A_pipeline_with_more_steps_than_the_limit_is_refused_naming_the_limit()
    {
        var type = await TypeAsync();
        using var response = await fx.Host.Http.PostAsJsonAsync("/pipelines", new
        {
            name = type,
            resource = type,
            steps = Enumerable.Range(1, 6).Select(i => new { id = $"s{i}", driver = "d" }),
        });
        await ProblemAsync(response, 400, "limit-exceeded", "steps", "Conveyor:Limits:MaxStepsPerPipeline", "5");
        Assert.Equal(404, await fx.StatusOfAsync($"/pipelines/{type}"));
    }

    [Fact]
    public async Task A_pipeline_with_more_schedules_than_the_limit_is_refused_naming_the_limit()
    {
        var type = await TypeAsync();
        using var response = await fx.Host.Http.PostAsJsonAsync("/pipelines", new
        {
            name = type,
            resource = type,
            steps = new[] { new { id = "a", driver = "d" } },
            schedules = Enumerable.Range(1, 3).Select(i => new { name = $"s{i}", cron = "0 * * * *", resource = "web" }),
        });
        await ProblemAsync(response, 400, "limit-exceeded", "schedules", "Conveyor:Limits:MaxSchedulesPerPipeline", "2");
        Assert.Equal(404, await fx.StatusOfAsync($"/pipelines/{type}"));
    }

    [Theory]
    [InlineData("*/30 * * * * *")]   // every 30 s
    [InlineData("0,1 0 1 1 *")]      // twice a year, exactly a minute apart: allowed
    public async Task A_schedule_firing_more_often_than_the_shortest_interval_is_refused(string cron)
    {
        var type = await TypeAsync();
        using var response = await fx.Host.Http.PostAsJsonAsync("/pipelines", new
        {
            name = type,
            resource = type,
            steps = new[] { new { id = "a", driver = "d" } },
            schedules = new[] { new { name = "often", cron, resource = "web" } },
        });
        if (cron.StartsWith("0,1", StringComparison.Ordinal))
        {
            // Exactly the shortest interval (1 min) is allowed.
            Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
            return;
        }

        await ProblemAsync(response, 400, "limit-exceeded", "schedules[0].cron", "Conveyor:Limits:MinScheduleInterval", "00:01:00");
        Assert.Equal(404, await fx.StatusOfAsync($"/pipelines/{type}"));
    }

    [Fact]
    public async Task A_resource_spec_over_the_size_limit_is_refused_with_413_on_create_and_update()
    {
        var type = await TypeAsync();
        var big = new { blob = new string('x', 3000) };
        using (var create = await fx.Host.Http.PostAsJsonAsync("/resources", new { name = "web", resource = type, spec = big }))
        {
            await ProblemAsync(create, 413, "payload-too-large", "spec", "Conveyor:Limits:MaxResourceSpecBytes", "2048");
        }

        Assert.Equal(404, await fx.StatusOfAsync($"/resources/{type}/web"));
        await fx.Host.PostJsonAsync("/resources", new { name = "web", resource = type, spec = new { blob = "small" } });
        using (var update = await fx.Host.Http.PutAsJsonAsync($"/resources/{type}/web", new { name = "web", spec = big }))
        {
            await ProblemAsync(update, 413, "payload-too-large", "spec", "Conveyor:Limits:MaxResourceSpecBytes", "2048");
        }

        Assert.Equal("small", (await fx.Host.GetJsonAsync($"/resources/{type}/web")).GetProperty("spec").GetProperty("blob").GetString());
    }
}
