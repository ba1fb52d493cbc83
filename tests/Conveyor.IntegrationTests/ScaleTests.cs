using System.Diagnostics;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace Conveyor.IntegrationTests;

/// <summary>Large DAGs complete, and what scheduling them costs is measured (reported in the test output).</summary>
[Collection(EngineCollection.Name)]
public sealed class ScaleTests(EngineFixture fx, ITestOutputHelper output)
{
    [Fact]
    public async Task Layered_dag_of_a_thousand_nodes_completes()
    {
        const int layers = 10;
        const int width = 100;
        var type = EngineFixture.Unique("big");
        var driver = EngineFixture.Unique("noop");
        await fx.CreateDefinitionAsync(type);
        var steps = new List<object>();
        for (var l = 0; l < layers; l++)
        {
            for (var i = 0; i < width; i++)
            {
                steps.Add(new
                {
                    id = $"l{l}n{i}",
                    driver,
                    dependsOn = l == 0 ? Array.Empty<string>() : [$"l{l - 1}n{i}", $"l{l - 1}n{(i + 1) % width}"],
                });
            }
        }

        await fx.Host.PostJsonAsync("/pipelines", new { name = type, resource = type, steps });
        await using var raw = await RawDriver.StartAsync(fx.Nats.Url, driver, $"drivers.{driver}.resources.{type}", _ => (true, "", (JsonNode?)null));

        var clock = Stopwatch.StartNew();
        var runId = (await fx.Host.PostJsonAsync("/resources", new { name = "web", resource = type, pipeline = type, spec = new { image = "x" } }))
            .GetProperty("runid").GetString()!;
        var run = await fx.Host.WaitForRunAsync(runId, TimeSpan.FromMinutes(3));
        clock.Stop();

        Assert.Equal("Succeeded", run.GetProperty("status").GetString());
        Assert.Equal(layers * width, raw.Received.Count);
        var makespan = run.GetProperty("finishedAt").GetDateTimeOffset() - run.GetProperty("startedAt").GetDateTimeOffset();
        output.WriteLine($"1000-node layered DAG ({layers}x{width}, 2 deps per node): makespan {makespan.TotalMilliseconds:F0} ms = {makespan.TotalMilliseconds / (layers * width):F2} ms per node (no-op driver); wall {clock.ElapsedMilliseconds} ms");
    }
}
