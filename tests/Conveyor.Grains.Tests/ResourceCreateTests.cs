using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Catalog;
using Conveyor.Grains.Resources;
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
        var type = "t" + Guid.NewGuid().ToString("N")[..8];
        await fx.Grains.GetGrain<IResourceDefinitionGrain>(Names.DefinitionKey(ns, type))
            .CreateAsync(new ResourceDefinitionData { Name = type, Schema = "{}" });
        await fx.Grains.GetGrain<IPipelineGrain>(Names.PipelineKey(ns, type)).PutAsync(new PipelineSpec
        {
            Name = type,
            ResourceType = type,
            Steps = [new StepSpec { Id = "s1", Driver = "d" }],
        });
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
}
