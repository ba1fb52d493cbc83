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

    [Fact]
    public async Task Recent_references_are_reused_and_old_ones_rebuilt_after_thousands_of_other_runs()
    {
        var first = Guid.NewGuid();
        var reference = fx.Grains.GetRunGrain(first);
        Assert.Same(reference, fx.Grains.GetRunGrain(first));

        // More runs than the two generations hold: the first run's reference is dropped, and a new one is as good.
        var others = Enumerable.Range(0, 3000).Select(_ => Guid.NewGuid()).ToArray();
        foreach (var id in others)
        {
            Assert.Equal(id, fx.Grains.GetRunGrain(id).GetPrimaryKey());
        }

        var rebuilt = fx.Grains.GetRunGrain(first);
        Assert.NotSame(reference, rebuilt);
        Assert.Equal(reference, rebuilt);
        Assert.Null(await rebuilt.GetAsync());
        // The most recent ones are still kept.
        Assert.Same(fx.Grains.GetRunGrain(others[^1]), fx.Grains.GetRunGrain(others[^1]));
    }
}
