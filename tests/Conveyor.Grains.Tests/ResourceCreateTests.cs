using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Catalog;
using Conveyor.Grains.Resources;
using Conveyor.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace Conveyor.Grains.Tests;

[Collection(ClusterCollection.Name)]
public sealed class ResourceCreateTests(ClusterFixture fx)
{
    [Fact]
    public async Task A_create_whose_run_cannot_be_recorded_fails_whole_and_leaves_no_version_or_catalog_entry()
    {
        // A namespace that was never created (or is being deleted) starts no run: the run's preparation fails while
        // the catalog entry and the first version are written beside it.
        var ns = "gone" + Guid.NewGuid().ToString("N")[..8];
        var type = await TypeWithPipelineAsync(ns);
        var key = Names.ResourceKey(ns, type, "r1");
        var grain = fx.Grains.GetGrain<IResourceGrain>(key);

        await Assert.ThrowsAsync<ConveyorNotFoundException>(() => grain.CreateAsync(
            new ResourceData { Name = "r1", Type = type, Pipeline = type, Spec = "{}" }, Guid.NewGuid()));

        Assert.Null((await grain.GetAsync()).Resource);
        var services = fx.Cluster.Silos[0].ServiceProvider;
        Assert.Null(await services.GetRequiredService<ResourceVersionStore>().ReadAsync(key, 1));
        var page = await services.GetRequiredService<IObjectCatalog>().ListAsync(ns, CatalogKind.Resource, null, null, null, 10);
        Assert.Empty(page.Members);
    }

    [Fact]
    public async Task An_idle_resource_leaves_memory_and_is_loaded_again_with_its_state()
    {
        var type = await TypeWithPipelineAsync("default");
        var grain = fx.Grains.GetGrain<IResourceGrain>(Names.ResourceKey("default", type, "r1"));
        await grain.CreateAsync(new ResourceData { Name = "r1", Type = type, Pipeline = type, Spec = """{"image":"a"}""" }, Guid.NewGuid());

        var id = grain.GetGrainId();
        await Eventually.TrueAsync(async () => !await fx.IsResidentAsync(id), TimeSpan.FromSeconds(30), "the idle resource leaves memory after its residence");

        var (resource, _) = await grain.GetAsync();
        Assert.Equal("""{"image":"a"}""", resource!.Spec);
    }

    /// <summary>A new resource type in <paramref name="ns"/> and a one-step pipeline of the same name on it.</summary>
    private async Task<string> TypeWithPipelineAsync(string ns)
    {
        var type = "t" + Guid.NewGuid().ToString("N")[..8];
        await fx.Grains.GetGrain<IResourceDefinitionGrain>(Names.DefinitionKey(ns, type))
            .CreateAsync(new ResourceDefinitionData { Name = type, Schema = "{}" });
        await fx.Grains.GetGrain<IPipelineGrain>(Names.PipelineKey(ns, type)).PutAsync(new PipelineSpec
        {
            Name = type,
            ResourceType = type,
            Steps = [new StepSpec { Id = "s1", Driver = "d" }],
        });
        return type;
    }
}
