using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Conveyor.Client;
using Conveyor.Contracts;
using Conveyor.Driver.Sdk;
using Conveyor.Testing;

namespace Conveyor.IntegrationTests;

/// <summary>A write that changes nothing stores nothing: no new revision or version, no run, and it says <c>unchanged</c>.</summary>
[Collection(EngineCollection.Name)]
public sealed class NoOpUpdateTests(EngineFixture fx)
{
    private ConveyorClient Client => new(fx.Host.Http);

    private async Task<(HttpStatusCode Status, JsonElement Body)> SendAsync(HttpMethod method, string path, string json)
    {
        using var response = await fx.Host.Http.SendAsync(new HttpRequestMessage(method, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") });
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{method} {path}: {(int)response.StatusCode} {text}");
        return (response.StatusCode, JsonDocument.Parse(text).RootElement.Clone());
    }

    private static bool Unchanged(JsonElement body) => body.TryGetProperty("unchanged", out var u) && u.GetBoolean();

    [Fact]
    public async Task Writing_the_same_pipeline_again_keeps_its_revision_and_says_unchanged_whatever_the_spelling()
    {
        var type = EngineFixture.Unique("noop");
        await fx.CreateDefinitionAsync(type);
        var pipeline = $$$"""{"name":"{{{type}}}","resource":"{{{type}}}","metadata":{"a":"1","b":"2"},"steps":[{"id":"s","driver":"d","params":{"x":1,"y":[1,2]}}]}""";
        var (created, first) = await SendAsync(HttpMethod.Post, "/pipelines", pipeline);
        Assert.Equal(HttpStatusCode.Created, created);
        Assert.False(Unchanged(first));

        // Same content, other key order and whitespace, through both routes.
        var respelled = $$$"""{ "steps": [ { "params": { "y": [1, 2], "x": 1.0 }, "driver": "d", "id": "s" } ], "metadata": {"b":"2","a":"1"}, "resource": "{{{type}}}", "name": "{{{type}}}" }""";
        var (postStatus, post) = await SendAsync(HttpMethod.Post, "/pipelines", respelled);
        var (putStatus, put) = await SendAsync(HttpMethod.Put, $"/pipelines/{type}", respelled);

        Assert.Equal(HttpStatusCode.Created, postStatus);
        Assert.Equal(HttpStatusCode.OK, putStatus);
        Assert.True(Unchanged(post) && Unchanged(put), $"{post} {put}");
        Assert.Equal(first.GetProperty("revision").GetInt32(), put.GetProperty("revision").GetInt32());

        var (_, changed) = await SendAsync(HttpMethod.Put, $"/pipelines/{type}", pipeline.Replace("\"x\":1", "\"x\":2", StringComparison.Ordinal));
        Assert.False(Unchanged(changed));
        Assert.Equal(first.GetProperty("revision").GetInt32() + 1, changed.GetProperty("revision").GetInt32());
    }

    [Fact]
    public async Task A_new_webhook_secret_is_a_change_and_an_omitted_one_is_not()
    {
        var type = EngineFixture.Unique("noop");
        await fx.CreateDefinitionAsync(type);
        string Hook(string? secret) =>
            $$$"""{"name":"{{{type}}}","resource":"{{{type}}}","steps":[{"id":"s","driver":"d"}],"webhooks":[{"name":"push","resource":{"name":"/n"}"""
            + (secret is null ? "" : $",\"secret\":\"{secret}\"") + "}]}";
        await SendAsync(HttpMethod.Post, "/pipelines", Hook("first-secret"));

        Assert.True(Unchanged((await SendAsync(HttpMethod.Put, $"/pipelines/{type}", Hook(null))).Body));
        Assert.True(Unchanged((await SendAsync(HttpMethod.Put, $"/pipelines/{type}", Hook("first-secret"))).Body));
        Assert.False(Unchanged((await SendAsync(HttpMethod.Put, $"/pipelines/{type}", Hook("second-secret"))).Body));
    }

    [Fact]
    public async Task Applying_the_same_definition_again_says_unchanged_and_a_changed_one_is_stored()
    {
        var type = EngineFixture.Unique("noop");
        var definition = """{"name":"TYPE","version":"1","schema":{"type":"object","properties":{"a":{"type":"string"}}}}""".Replace("TYPE", type, StringComparison.Ordinal);
        Assert.False(Unchanged((await SendAsync(HttpMethod.Post, "/resource-definitions/apply", definition)).Body));

        Assert.True(Unchanged((await SendAsync(HttpMethod.Post, "/resource-definitions/apply", definition)).Body));
        Assert.True(Unchanged((await SendAsync(HttpMethod.Put, $"/resource-definitions/{type}", definition)).Body));
        var (_, changed) = await SendAsync(HttpMethod.Put, $"/resource-definitions/{type}", definition.Replace("\"version\":\"1\"", "\"version\":\"2\"", StringComparison.Ordinal));
        Assert.False(Unchanged(changed));
        Assert.Equal("2", (await Client.GetResourceDefinitionAsync(type)).Version);
    }

    [Fact]
    public async Task Writing_a_resource_back_after_its_run_keeps_its_version_and_driver_results_and_starts_nothing()
    {
        var type = EngineFixture.Unique("noop");
        var driver = EngineFixture.Unique("drv");
        await fx.CreateDefinitionAsync(type);
        await Client.CreatePipelineAsync(new Pipeline { Name = type, Resource = type, Steps = [new PipelineStep { Id = "1", Driver = driver }] });
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await using var manager = new DriverManager(new OkDriver(driver, type), new DriverOptions { Name = driver, Resources = [type], NatsUrl = fx.Nats.Url, ShutdownGracePeriod = TimeSpan.FromSeconds(2) });
        _ = manager.RunAsync(cts.Token);
        await manager.WaitUntilReadyAsync(cts.Token);
        var created = await Client.CreateResourceAsync(new CreateResourceRequest { Name = "web", ResourceType = type, Pipeline = type, Spec = JsonSerializer.Deserialize<JsonElement>("""{"image":"a"}""") });
        await Client.WaitForRunAsync(created.RunId, TimeSpan.FromSeconds(30), cts.Token);
        var read = await Client.GetResourceAsync(type, "web");
        Assert.Contains($"driverresults.{driver}", read.Metadata!.Keys);

        var written = await Client.UpdateResourceAsync(read);
        var rawSame = await SendAsync(HttpMethod.Put, $"/resources/{type}/web", """{"spec":{"image":"a"}}""");

        Assert.True(written.Unchanged);
        Assert.True(Unchanged(rawSame.Body));
        var again = await Client.GetResourceAsync(type, "web");
        Assert.Equal("1", again.Metadata!["version"]);
        Assert.Equal(read.Metadata[$"driverresults.{driver}"], again.Metadata[$"driverresults.{driver}"]);
        Assert.Single((await Client.ListRunsAsync(type)).Items);

        var changed = await Client.UpdateResourceAsync(read with { Spec = JsonSerializer.Deserialize<JsonElement>("""{"image":"b"}""") });
        Assert.False(changed.Unchanged);
        Assert.Equal("2", changed.Metadata!["version"]);
        Assert.Single((await Client.ListRunsAsync(type)).Items);
    }

    private sealed class OkDriver(string name, string resource) : IDriver
    {
        public string Name => name;

        public IReadOnlyCollection<string> Resources => [resource];

        public Task<DriverResult> ReconcileAsync(DriverEvent driverEvent, DriverContext context, CancellationToken cancellationToken) =>
            Task.FromResult(DriverResult.Ok("done", new { ok = true }));
    }
}
