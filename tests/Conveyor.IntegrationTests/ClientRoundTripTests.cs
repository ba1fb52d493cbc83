using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Conveyor.Client;
using Conveyor.Contracts;

namespace Conveyor.IntegrationTests;

/// <summary>
/// Every kind survives a read and a write back through the client unchanged: the client's DTOs are the server's, so a
/// field the client does not know cannot exist, and an update can no longer delete one.
/// </summary>
[Collection(EngineCollection.Name)]
public sealed class ClientRoundTripTests(EngineFixture fx)
{
    private ConveyorClient Client => new(fx.Host.Http);

    private static readonly JsonSerializerOptions Wire = new(JsonSerializerDefaults.Web);

    /// <summary>The JSON a client would send back, without the members the server manages.</summary>
    private static string Json<T>(T value, params string[] serverManaged)
    {
        var node = JsonSerializer.SerializeToNode(value, Wire)!.AsObject();
        foreach (var name in serverManaged)
        {
            node.Remove(name);
        }

        return node.ToJsonString();
    }

    private async Task<string> DefineAsync()
    {
        var type = EngineFixture.Unique("rt");
        await Client.CreateResourceDefinitionAsync(new ResourceDefinition
        {
            Name = type,
            Description = "a type",
            Version = "2.1.0",
            Schema = JsonSerializer.Deserialize<JsonElement>("""{"type":"object","properties":{"image":{"type":"string"},"branch":{"type":"string"}}}"""),
        });
        return type;
    }

    [Fact]
    public async Task A_resource_definition_read_and_written_back_keeps_every_field()
    {
        var type = await DefineAsync();
        var read = await Client.GetResourceDefinitionAsync(type);

        var written = await Client.UpdateResourceDefinitionAsync(read);
        var again = await Client.GetResourceDefinitionAsync(type);

        Assert.Equal("a type", again.Description);
        Assert.Equal("2.1.0", again.Version);
        Assert.Equal(
            """{"id":"ID","name":"TYPE","description":"a type","version":"2.1.0","schema":{"type":"object","properties":{"image":{"type":"string"},"branch":{"type":"string"}}}}"""
                .Replace("ID", read.Id, StringComparison.Ordinal).Replace("TYPE", type, StringComparison.Ordinal),
            (await fx.Host.GetJsonAsync($"/resource-definitions/{type}")).GetRawText());
        Assert.Equal(Json(read, "unchanged"), Json(written, "unchanged"));
        Assert.Equal(Json(read, "unchanged"), Json(again, "unchanged"));
        Assert.True(written.Unchanged);
    }

    [Fact]
    public async Task A_pipeline_with_every_field_set_read_and_written_back_keeps_every_field()
    {
        var type = await DefineAsync();
        await Client.PutSecretAsync("RT_TOKEN", "s3cret-value");
        // Written as raw JSON, not through the DTOs, so that the check below does not depend on what they know.
        var sent = $$$"""
            {"name":"{{{type}}}","description":"ships it","version":"3","resource":"{{{type}}}",
             "steps":[{"id":"build","name":"Build","driver":"builder","dependsOn":[],
                       "retry":{"maxAttempts":3,"initialDelay":"1s","maxDelay":"10s","multiplier":2,"jitter":0.2},
                       "timeout":"10m","params":{"target":"linux/amd64","n":1}},
                      {"id":"lint","name":"Lint","driver":"linter","dependsOn":[],"allowFailure":true},
                      {"id":"deploy","name":"Deploy","driver":"deployer","dependsOn":["build","lint"],"secrets":["RT_TOKEN"]}],
             "metadata":{"team":"platform"},"timeout":"30m","failurePolicy":"continue",
             "retry":{"maxAttempts":2,"initialDelay":"2s","maxDelay":"1m","multiplier":3,"jitter":0.1},
             "variables":{"REGION":"eu-west"},"concurrency":2,
             "concurrencyGroup":{"key":"spec.branch","onConflict":"cancel-in-progress"},
             "schedules":[{"name":"nightly","cron":"0 2 * * *","timeZone":"Europe/Berlin","resource":"web","priority":2,"missedFire":"skip"}],
             "webhooks":[{"name":"push","secret":"hook-secret-1","resource":{"name":"/repository/name","spec.branch":"/ref"},"priority":4}]}
            """;
        await fx.Host.PostJsonAsync("/pipelines", JsonNode.Parse(sent)!);

        var read = await Client.GetPipelineAsync(type);
        var written = await Client.UpdatePipelineAsync(read);

        Assert.True(written.Unchanged);
        Assert.Equal(read.Revision, written.Revision);

        var expected = JsonNode.Parse(sent)!.AsObject();
        expected["webhooks"]![0]!.AsObject().Remove("secret");
        expected["webhooks"]![0]!["url"] = $"/hooks/default/{type}/push";
        var stored = JsonNode.Parse((await fx.Host.GetJsonAsync($"/pipelines/{type}")).GetRawText())!.AsObject();
        Assert.Equal(read.Revision, stored["revision"]!.GetValue<int>());
        stored.Remove("revision");
        Assert.True(JsonNode.DeepEquals(expected, stored), $"expected {expected.ToJsonString()}\n     got {stored.ToJsonString()}");

        // The webhook secret, never read, survived the write back: a delivery signed with it is accepted.
        var body = """{"ref":"main","repository":{"name":"web"}}""";
        using var delivery = new HttpRequestMessage(HttpMethod.Post, $"/hooks/default/{type}/push") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        delivery.Headers.Add("X-Hub-Signature-256", "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes("hook-secret-1"), Encoding.UTF8.GetBytes(body))));
        using var accepted = await fx.Host.Http.SendAsync(delivery);
        Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
    }

    [Fact]
    public async Task A_resource_read_and_written_back_keeps_every_field()
    {
        var type = await DefineAsync();
        await Client.CreatePipelineAsync(new Pipeline { Name = type, Resource = type, Steps = [new PipelineStep { Id = "1", Driver = EngineFixture.Unique("idle") }] });
        await Client.CreateResourceAsync(new CreateResourceRequest
        {
            Name = "web",
            ResourceType = type,
            Pipeline = type,
            Spec = JsonSerializer.Deserialize<JsonElement>("""{"image":"nginx:1.27","branch":"main"}"""),
        });
        var created = await Client.GetResourceAsync(type, "web");
        await Client.UpdateResourceAsync(created with { Metadata = new Dictionary<string, string> { ["owner"] = "team-a" } });
        var read = await Client.GetResourceAsync(type, "web");

        var written = await Client.UpdateResourceAsync(read);
        var again = await Client.GetResourceAsync(type, "web");

        Assert.Equal(type, again.Pipeline);
        Assert.Equal("team-a", again.Metadata!["owner"]);
        Assert.Equal("""{"image":"nginx:1.27","branch":"main"}""", again.Spec!.Value.GetRawText());
        Assert.True(written.Unchanged);
        Assert.Equal("2", again.Metadata!["version"]);
        Assert.Equal(Json(WithoutVersion(read)), Json(WithoutVersion(written) with { Unchanged = false }));
        Assert.Equal(Json(WithoutVersion(read)), Json(WithoutVersion(again)));
    }

    private static Resource WithoutVersion(Resource resource) =>
        resource with { Metadata = resource.Metadata!.Where(m => m.Key != "version").ToDictionary(m => m.Key, m => m.Value) };
}
