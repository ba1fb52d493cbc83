using System.Net;
using System.Text.Json;
using Conveyor.Client;
using StackExchange.Redis;

namespace Conveyor.IntegrationTests;

/// <summary>
/// Listing definitions, pipelines and resources: cursor paging in a stable order, filters, namespaces kept apart,
/// deletions, and the repair of entries a crash left behind.
/// </summary>
[Collection(EngineCollection.Name)]
public sealed class ListingTests(EngineFixture fx)
{
    private ConveyorClient Client => new(fx.Host.Http);

    private static readonly JsonElement AnyObject = JsonSerializer.Deserialize<JsonElement>("""{"type":"object"}""");

    private async Task<string> TypeAsync(ConveyorClient? client = null)
    {
        var type = EngineFixture.Unique("lt");
        await (client ?? Client).CreateResourceDefinitionAsync(new ResourceDefinition { Name = type, Schema = AnyObject });
        return type;
    }

    private async Task PipelineAsync(string name, string type, ConveyorClient? client = null) =>
        await (client ?? Client).CreatePipelineAsync(new Pipeline { Name = name, Resource = type, Steps = [new PipelineStep { Id = "1", Driver = "nobody-" + name }] });

    private static async Task<List<T>> AllPagesAsync<T>(Func<string?, Task<(IReadOnlyList<T> Items, string? Next)>> page, int expectedPages)
    {
        var all = new List<T>();
        string? cursor = null;
        var pages = 0;
        do
        {
            var (items, next) = await page(cursor);
            all.AddRange(items);
            cursor = next;
            pages++;
        }
        while (cursor is not null);

        Assert.Equal(expectedPages, pages);
        return all;
    }

    [Fact]
    public async Task Definitions_are_paged_by_name_with_a_cursor_and_a_prefix()
    {
        var prefix = EngineFixture.Unique("pg");
        var names = Enumerable.Range(0, 25).Select(i => $"{prefix}-{i:00}").ToList();
        foreach (var name in names.AsEnumerable().Reverse())
        {
            await Client.CreateResourceDefinitionAsync(new ResourceDefinition { Name = name, Schema = AnyObject });
        }

        var listed = await AllPagesAsync(
            async c => (await Client.ListResourceDefinitionsAsync(prefix + "-", 10, c)) is var p ? (p.Items, p.NextCursor) : default,
            expectedPages: 3);

        Assert.Equal(names, listed.Select(d => d.Name));
        Assert.All(listed, d => Assert.Equal("object", d.Schema!.Value.GetProperty("type").GetString()));
        Assert.Equal(names, await Client.ListAllResourceDefinitionsAsync(prefix).Select(d => d.Name).ToListAsync());
    }

    [Fact]
    public async Task Pipelines_are_listed_by_resource_type_and_prefix_and_a_deleted_one_disappears()
    {
        var a = await TypeAsync();
        var b = await TypeAsync();
        var prefix = EngineFixture.Unique("pl");
        foreach (var i in Enumerable.Range(0, 5))
        {
            await PipelineAsync($"{prefix}-{i}", i < 3 ? a : b);
        }

        Assert.Equal([$"{prefix}-0", $"{prefix}-1", $"{prefix}-2"], (await Client.ListPipelinesAsync(resourceType: a)).Items.Select(p => p.Name));
        Assert.Equal([$"{prefix}-3", $"{prefix}-4"], (await Client.ListPipelinesAsync(prefix: prefix, resourceType: b)).Items.Select(p => p.Name));
        var paged = await AllPagesAsync(async c => (await Client.ListPipelinesAsync(prefix, limit: 2, cursor: c)) is var p ? (p.Items, p.NextCursor) : default, expectedPages: 3);
        Assert.Equal(5, paged.Count);

        await Client.DeletePipelineAsync($"{prefix}-1");
        // Moved to the other type: listed under it, and no longer under the first.
        await PipelineAsync($"{prefix}-2", b);

        Assert.Equal([$"{prefix}-0"], (await Client.ListPipelinesAsync(resourceType: a)).Items.Select(p => p.Name));
        Assert.Equal([$"{prefix}-2", $"{prefix}-3", $"{prefix}-4"], (await Client.ListPipelinesAsync(resourceType: b)).Items.Select(p => p.Name));
        Assert.Equal([$"{prefix}-0", $"{prefix}-2", $"{prefix}-3", $"{prefix}-4"], (await Client.ListPipelinesAsync(prefix)).Items.Select(p => p.Name));
    }

    [Fact]
    public async Task Resources_are_listed_by_type_across_types_and_by_pipeline()
    {
        var a = await TypeAsync();
        var b = await TypeAsync();
        await PipelineAsync(a, a);
        foreach (var name in new[] { "web-2", "web-1", "api", "web-3" })
        {
            await Client.CreateResourceAsync(new CreateResourceRequest { Name = name, ResourceType = a, Pipeline = name == "api" ? null : a, Spec = AnyObject });
        }

        await Client.CreateResourceAsync(new CreateResourceRequest { Name = "web-1", ResourceType = b, Spec = AnyObject });

        Assert.Equal(["api", "web-1", "web-2", "web-3"], (await Client.ListResourcesAsync(a)).Items.Select(r => r.Name));
        Assert.Equal(["web-1", "web-2"], (await Client.ListResourcesAsync(a, prefix: "web", limit: 2)).Items.Select(r => r.Name));
        Assert.Equal(["web-1", "web-2", "web-3"], (await Client.ListResourcesAsync(a, pipeline: a)).Items.Select(r => r.Name));
        Assert.Equal(["web-1", "web-2", "web-3"], (await Client.ListResourcesAsync(pipeline: a)).Items.Select(r => r.Name));
        var listed = (await Client.ListResourcesAsync(a, limit: 3)).Items.Single(r => r.Name == "web-1");
        Assert.Equal(a, listed.ResourceType);
        Assert.Equal("1", listed.Metadata!["version"]);

        var mine = await Client.ListAllResourcesAsync().Where(r => r.ResourceType == a || r.ResourceType == b).Select(r => $"{r.ResourceType}/{r.Name}").ToListAsync();
        Assert.Equal(new[] { $"{a}/api", $"{a}/web-1", $"{a}/web-2", $"{a}/web-3", $"{b}/web-1" }.Order(StringComparer.Ordinal), mine);

        await Client.DeleteResourceAsync(a, "web-2");
        Assert.Equal(["api", "web-1", "web-3"], (await Client.ListResourcesAsync(a)).Items.Select(r => r.Name));
    }

    [Fact]
    public async Task A_namespace_lists_only_its_own_objects()
    {
        var ns = EngineFixture.Unique("ns");
        await Client.CreateNamespaceAsync(ns);
        var team = Client.InNamespace(ns);
        var type = await TypeAsync(team);
        await PipelineAsync(type, type, team);
        await team.CreateResourceAsync(new CreateResourceRequest { Name = "web", ResourceType = type, Spec = AnyObject });

        Assert.Equal([type], (await team.ListResourceDefinitionsAsync()).Items.Select(d => d.Name));
        Assert.Equal([type], (await team.ListPipelinesAsync()).Items.Select(p => p.Name));
        Assert.Equal(["web"], (await team.ListResourcesAsync()).Items.Select(r => r.Name));
        Assert.Empty((await Client.ListResourceDefinitionsAsync(prefix: type)).Items);
        Assert.Empty((await Client.ListPipelinesAsync(prefix: type)).Items);
        Assert.Empty((await Client.ListResourcesAsync(type)).Items);
    }

    [Fact]
    public async Task An_entry_a_crash_left_without_an_object_is_dropped_from_the_listing_and_from_the_catalog()
    {
        var type = await TypeAsync();
        await PipelineAsync(type, type);
        var redis = await ConnectionMultiplexer.ConnectAsync(fx.Redis.ConnectionString);
        await using (redis.ConfigureAwait(false))
        {
            var db = redis.GetDatabase();
            var prefix = $"conveyor:{fx.ServiceId}:default:catalog:";
            // What a silo that died between adding the entry and storing the object leaves behind.
            await db.SortedSetAddAsync(prefix + "definition", type + "-ghost", 0);
            await db.SortedSetAddAsync(prefix + "resource", $"{type}/ghost", 0);
            await db.SortedSetAddAsync(prefix + "resource:by:" + type, $"{type}/ghost", 0);
            // A pipeline whose type changed while the old filter entry's removal was lost.
            await db.SortedSetAddAsync(prefix + "pipeline:by:" + type + "-old", type, 0);

            Assert.Equal([type], (await Client.ListResourceDefinitionsAsync(prefix: type)).Items.Select(d => d.Name));
            Assert.Empty((await Client.ListResourcesAsync(type)).Items);
            Assert.Empty((await Client.ListResourcesAsync(pipeline: type)).Items);
            Assert.Empty((await Client.ListPipelinesAsync(resourceType: type + "-old")).Items);

            Assert.Null(await db.SortedSetScoreAsync(prefix + "definition", type + "-ghost"));
            Assert.Null(await db.SortedSetScoreAsync(prefix + "resource", $"{type}/ghost"));
            Assert.Null(await db.SortedSetScoreAsync(prefix + "resource:by:" + type, $"{type}/ghost"));
            Assert.Null(await db.SortedSetScoreAsync(prefix + "pipeline:by:" + type + "-old", type));
            Assert.NotNull(await db.SortedSetScoreAsync(prefix + "pipeline:by:" + type, type));
        }
    }

    [Theory]
    [InlineData("/pipelines?cursor=not-a-cursor", "cursor")]
    [InlineData("/resource-definitions?limit=0", "limit")]
    [InlineData("/resources/app?limit=501", "limit")]
    [InlineData("/resources/app?prefix=Web", "prefix")]
    [InlineData("/pipelines?resource=Bad_Type", "resource")]
    [InlineData("/resources?pipeline=-x", "pipeline")]
    public async Task Bad_listing_parameters_are_400_naming_the_parameter(string path, string field)
    {
        using var response = await fx.Host.Http.GetAsync(path);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{path}: {(int)response.StatusCode} {text}");
        Assert.True(JsonDocument.Parse(text).RootElement.GetProperty("errors").TryGetProperty(field, out _), text);
    }
}
