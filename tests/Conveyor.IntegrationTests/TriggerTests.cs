using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Conveyor.Client;
using Conveyor.Testing;

namespace Conveyor.IntegrationTests;

/// <summary>Starting runs by hand: <c>POST /pipelines/{name}/runs</c> and the SDK's <c>TriggerRunAsync</c>.</summary>
[Collection(EngineCollection.Name)]
public sealed class TriggerTests(EngineFixture fx)
{
    private static readonly TimeSpan RunTimeout = Deadlines.Event;

    /// <summary>A type, a one-step pipeline with step params, and a resource that names no pipeline (so creating it starts nothing).</summary>
    private async Task<(string Type, RawDriver Driver)> SetupAsync(string prefix = "")
    {
        var type = EngineFixture.Unique("trg");
        var driver = EngineFixture.Unique("drv");
        await fx.Host.PostJsonAsync($"{prefix}/resource-definitions", new
        {
            name = type,
            version = "1",
            schema = new { type = "object", properties = new { image = new { type = "string" } }, required = new[] { "image" } },
        });
        await fx.Host.PostJsonAsync($"{prefix}/pipelines", new
        {
            name = type,
            resource = type,
            steps = new[] { new { id = "build", driver, @params = new { target = "linux", level = 1 } } },
        });
        await fx.Host.PostJsonAsync($"{prefix}/resources", new { name = "web", resource = type, spec = new { image = "nginx" } });
        var raw = await RawDriver.StartAsync(fx.Nats.Url, driver, $"drivers.{driver}.resources.{type}");
        return (type, raw);
    }

    [Fact]
    public async Task Trigger_starts_a_run_for_an_existing_resource_with_priority_and_params_merged_over_step_params()
    {
        var (type, driver) = await SetupAsync();
        await using var _ = driver;

        using var response = await fx.Host.Http.PostAsJsonAsync($"/pipelines/{type}/runs", new { resource = "web", priority = 5, @params = new { level = 2, extra = "yes" } });
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, text);
        var created = JsonDocument.Parse(text).RootElement;
        var id = created.GetProperty("id").GetString()!;
        Assert.Equal($"/runs/{id}", response.Headers.Location!.OriginalString);
        Assert.Equal(5, created.GetProperty("priority").GetInt32());
        Assert.Equal("manual", created.GetProperty("trigger").GetString());

        var run = await fx.Host.WaitForRunAsync(id, RunTimeout);
        Assert.Equal("Succeeded", run.GetProperty("status").GetString());
        Assert.Equal("web", run.GetProperty("resourceName").GetString());
        var message = Assert.Single(driver.Received).Message;
        var sent = message.GetProperty("params");
        Assert.Equal("linux", sent.GetProperty("target").GetString());
        Assert.Equal(2, sent.GetProperty("level").GetInt32());
        Assert.Equal("yes", sent.GetProperty("extra").GetString());
        Assert.Equal(id, message.GetProperty("run_id").GetString());
    }

    [Fact]
    public async Task Trigger_rejects_unknown_pipeline_unknown_resource_and_bad_input_and_stores_no_run()
    {
        var (type, driver) = await SetupAsync();
        await using var _ = driver;

        await AssertProblem($"/pipelines/nope-{type}/runs", new { resource = "web" }, HttpStatusCode.NotFound, "pipeline nope-");
        await AssertProblem($"/pipelines/{type}/runs", new { resource = "ghost" }, HttpStatusCode.NotFound, "resource with name ghost");
        await AssertProblem($"/pipelines/{type}/runs", new { resource = "web", priority = 9 }, HttpStatusCode.BadRequest, "'priority' must be between 1 and 5");
        await AssertProblem($"/pipelines/{type}/runs", new { resource = "web", @params = new[] { 1 } }, HttpStatusCode.BadRequest, "'params' must be a JSON object");
        await AssertProblem($"/pipelines/{type}/runs", new { priority = 1 }, HttpStatusCode.BadRequest, "'resource' is required");

        var runs = await fx.Host.GetJsonAsync($"/pipelines/{type}/runs");
        Assert.Equal(0, runs.GetProperty("items").GetArrayLength());
        Assert.True(driver.Received.IsEmpty);
    }

    [Fact]
    public async Task Repeating_a_trigger_with_the_same_idempotency_key_returns_the_first_run_and_starts_nothing()
    {
        var (type, driver) = await SetupAsync();
        await using var _ = driver;

        async Task<(HttpStatusCode, string)> Post(string key)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, $"/pipelines/{type}/runs") { Content = JsonContent.Create(new { resource = "web" }) };
            request.Headers.Add("Idempotency-Key", key);
            using var response = await fx.Host.Http.SendAsync(request);
            var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
            return (response.StatusCode, body.GetProperty("id").GetString()!);
        }

        var (firstStatus, first) = await Post("deploy-42");
        var (againStatus, again) = await Post("deploy-42");
        var (otherStatus, other) = await Post("deploy-43");
        Assert.Equal(HttpStatusCode.Created, firstStatus);
        Assert.Equal(HttpStatusCode.OK, againStatus);
        Assert.Equal(first, again);
        Assert.Equal(HttpStatusCode.Created, otherStatus);
        Assert.NotEqual(first, other);

        await fx.Host.WaitForRunAsync(first, RunTimeout);
        await fx.Host.WaitForRunAsync(other, RunTimeout);
        var runs = await fx.Host.GetJsonAsync($"/pipelines/{type}/runs");
        Assert.Equal(2, runs.GetProperty("items").GetArrayLength());
        Assert.Equal(2, driver.Received.Count);
    }

    [Fact]
    public async Task Sdk_triggers_a_run_in_a_namespace_and_the_run_is_invisible_elsewhere()
    {
        var ns = EngineFixture.Unique("team");
        await fx.Host.PostJsonAsync("/namespaces", new { name = ns });
        var (type, driver) = await SetupAsync($"/namespaces/{ns}");
        await using var _ = driver;
        var client = new ConveyorClient(new HttpClient { BaseAddress = new Uri(fx.Host.Address, $"/namespaces/{ns}/") });

        var run = await client.TriggerRunAsync(type, "web", priority: 2, parameters: JsonSerializer.SerializeToElement(new { level = 7 }), idempotencyKey: "k1");
        Assert.Equal(2, run.Priority);
        Assert.Equal("manual", run.Trigger);
        var done = await client.WaitForRunAsync(run.Id, RunTimeout);
        Assert.Equal(Conveyor.Contracts.RunStatus.Succeeded, done.Status);
        Assert.Equal(run.Id, (await client.TriggerRunAsync(type, "web", idempotencyKey: "k1")).Id);

        using var hidden = await fx.Host.Http.GetAsync($"/runs/{run.Id}");
        Assert.Equal(HttpStatusCode.NotFound, hidden.StatusCode);
        var error = await Assert.ThrowsAnyAsync<ConveyorApiException>(() => client.TriggerRunAsync(type, "ghost"));
        Assert.Equal(HttpStatusCode.NotFound, error.Status);
    }

    private async Task AssertProblem(string path, object body, HttpStatusCode status, string detail)
    {
        using var response = await fx.Host.Http.PostAsync(path, new StringContent(JsonSerializer.Serialize(body), System.Text.Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"{path}: expected {status}, got {response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains(detail, JsonNode.Parse(text)!["detail"]!.GetValue<string>(), StringComparison.Ordinal);
    }
}
