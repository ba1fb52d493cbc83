using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Runs;

namespace Conveyor.Grains.Tests;

[Collection(ClusterCollection.Name)]
public sealed class RunGrainsTests(ClusterFixture fx)
{
    [Fact]
    public async Task Run_grain_references_built_from_the_cached_types_address_the_same_grain_as_GetGrain()
    {
        // The first call resolves and caches the types, every later one builds the reference from them.
        foreach (var id in new[] { Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid() })
        {
            var cached = fx.Grains.GetRunGrain(id);
            var resolved = fx.Grains.GetGrain<IPipelineRunGrain>(id);

            Assert.Equal(resolved.GetGrainId(), cached.GetGrainId());
            Assert.Equal(id, cached.GetPrimaryKey());
            Assert.Equal(resolved, cached);
            // A call through it reaches the run grain (an unknown run has no state).
            Assert.Null(await cached.GetAsync());
        }
    }
}
