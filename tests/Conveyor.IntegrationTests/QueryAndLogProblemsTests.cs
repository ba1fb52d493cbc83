using System.Net;
using System.Text.Json;
using Conveyor.Client;

namespace Conveyor.IntegrationTests;

/// <summary>
/// Query values that do not bind are validation problems naming the parameter, on every route; unknown run ids on
/// the original's log routes are 404, while a run that exists but has no log yet is not unknown.
/// </summary>
[Collection(EngineCollection.Name)]
public sealed class QueryAndLogProblemsTests(EngineFixture fx)
{
    private async Task<JsonElement> ProblemAsync(string path, HttpStatusCode expected)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        using var response = await fx.Host.Http.GetAsync(path, HttpCompletionOption.ResponseHeadersRead, cts.Token);
        var text = await response.Content.ReadAsStringAsync(cts.Token);
        Assert.True(response.StatusCode == expected, $"{path}: expected {(int)expected}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    [Theory]
    [InlineData("/runs?limit=abc", "limit")]
    [InlineData("/runs?limit=99999999999", "limit")]
    [InlineData("/runs?limit=0", "limit")]
    [InlineData("/pipelines/p/runs?limit=1e3", "limit")]
    [InlineData("/namespaces/default/runs?limit=-", "limit")]
    [InlineData("/pipelines?limit=ten", "limit")]
    [InlineData("/resource-definitions?limit=2147483648", "limit")]
    [InlineData("/resources?limit=x", "limit")]
    [InlineData("/resources/app?limit=x", "limit")]
    [InlineData("/runs/00000000-0000-0000-0000-000000000001/logs?limit=many", "limit")]
    public async Task A_query_value_that_does_not_parse_is_a_validation_problem_naming_it(string path, string field)
    {
        var problem = await ProblemAsync(path, HttpStatusCode.BadRequest);

        Assert.Equal("urn:conveyor:problem:validation", problem.GetProperty("type").GetString());
        Assert.True(problem.GetProperty("errors").TryGetProperty(field, out var messages), problem.ToString());
        Assert.Contains($"'{field}'", messages[0].GetString(), StringComparison.Ordinal);
        Assert.Equal(problem.GetProperty("detail").GetString(), problem.GetProperty("error").GetString());
    }

    [Theory]
    [InlineData("/logs?runid=RUN")]
    [InlineData("/logs/pipeline/RUN")]
    [InlineData("/logs/streams/jenkins/RUN")]
    [InlineData("/logs?runid=not-a-uuid-RUN")]
    public async Task An_unknown_run_id_on_the_original_log_routes_is_404_not_an_empty_answer_or_an_open_stream(string template)
    {
        var path = template.Replace("RUN", Guid.NewGuid().ToString(), StringComparison.Ordinal);

        var problem = await ProblemAsync(path, HttpStatusCode.NotFound);

        Assert.Equal("urn:conveyor:problem:not-found", problem.GetProperty("type").GetString());
    }

    [Fact]
    public async Task A_run_that_exists_but_has_no_log_yet_is_an_empty_list_and_an_open_stream()
    {
        var type = EngineFixture.Unique("nolog");
        await fx.CreateDefinitionAsync(type);
        var client = new ConveyorClient(fx.Host.Http);
        await client.CreatePipelineAsync(new Pipeline { Name = type, Resource = type, Steps = [new PipelineStep { Id = "1", Driver = EngineFixture.Unique("absent") }] });
        var run = await client.CreateResourceAsync(new CreateResourceRequest { Name = "web", ResourceType = type, Pipeline = type, Spec = JsonSerializer.Deserialize<JsonElement>("""{"image":"a"}""") });

        Assert.Equal("[]", await fx.Host.Http.GetStringAsync($"/logs?runid={run.RunId}"));
        foreach (var path in new[] { $"/logs/pipeline/{run.RunId}", $"/logs/streams/nobody/{run.RunId}" })
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            using var stream = await fx.Host.Http.GetAsync(path, HttpCompletionOption.ResponseHeadersRead, cts.Token);
            Assert.Equal(HttpStatusCode.OK, stream.StatusCode);
            Assert.Equal("text/event-stream", stream.Content.Headers.ContentType?.MediaType);
        }
    }
}
