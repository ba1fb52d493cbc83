using System.Text;
using System.Text.RegularExpressions;
using Conveyor.Testing;

namespace Conveyor.IntegrationTests;

/// <summary>The pipelines of <c>docs/guides/pipelines.md</c> are accepted as written (conditions compile, shapes validate).</summary>
[Collection(EngineCollection.Name)]
public sealed partial class PipelineGuideTests(EngineFixture fx)
{
    [GeneratedRegex(@"localhost:8080/pipelines -H 'content-type: application/json' -d '(\{.*?\})'", RegexOptions.Singleline)]
    private static partial Regex PipelineBody();

    private static string Guide()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Conveyor.sln")))
        {
            dir = dir.Parent;
        }

        Assert.NotNull(dir);
        return File.ReadAllText(Path.Combine(dir!.FullName, "docs", "guides", "pipelines.md"));
    }

    [Fact]
    public async Task Every_pipeline_in_the_guide_is_saved_as_written()
    {
        var type = EngineFixture.Unique("guide");
        await fx.CreateDefinitionAsync(type);
        var bodies = PipelineBody().Matches(Guide()).Select(m => m.Groups[1].Value).ToList();
        Assert.True(bodies.Count >= 6, $"{bodies.Count} pipelines found in the guide");

        // The guide's names, made unique to this test: the resource type, and each pipeline (also where a step names one).
        var names = bodies.Select(b => Regex.Match(b, "^\\{\\s*\"name\": \"([^\"]+)\"").Groups[1].Value).ToList();
        foreach (var body in bodies)
        {
            var json = body.Replace("\"resource\": \"app\"", $"\"resource\": \"{type}\"", StringComparison.Ordinal);
            foreach (var name in names)
            {
                json = json.Replace($"\"name\": \"{name}\"", $"\"name\": \"{type}-{name}\"", StringComparison.Ordinal)
                    .Replace($"\"pipeline\": \"{name}\"", $"\"pipeline\": \"{type}-{name}\"", StringComparison.Ordinal);
            }

            using var content = new StringContent(json, Encoding.UTF8, "application/json");
            using var response = await fx.Host.Http.PostAsync("/pipelines", content);
            Assert.True(response.IsSuccessStatusCode, $"{json}\n→ {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }
    }
}
