using System.Net;
using System.Text;
using System.Text.Json;
using Conveyor.Client;
using Conveyor.Testing;
using Conveyor.Contracts;

namespace Conveyor.Driver.Sdk.Tests;

public sealed class ConveyorClientTests
{
    [Fact]
    public async Task Problem_details_response_becomes_a_typed_exception()
    {
        const string problem = """
            {"type":"https://conveyor.dev/problems/validation","title":"One or more validation errors occurred.","status":400,
             "detail":"The pipeline is invalid.","error":"The pipeline is invalid.",
             "errors":{"steps[1].dependsOn":["unknown step 'nope'"],"name":["'name' is required."]}}
            """;
        var client = Client(_ => Respond(HttpStatusCode.BadRequest, problem, "application/problem+json"));

        var error = await Assert.ThrowsAnyAsync<ConveyorApiException>(() => client.CreatePipelineAsync(new Pipeline { Name = "p" }));

        Assert.Equal(HttpStatusCode.BadRequest, error.Status);
        Assert.Equal("https://conveyor.dev/problems/validation", error.Type);
        Assert.Equal("One or more validation errors occurred.", error.Title);
        Assert.Equal("The pipeline is invalid.", error.Detail);
        Assert.Equal("The pipeline is invalid.", error.Error);
        Assert.Equal(["unknown step 'nope'"], error.Errors["steps[1].dependsOn"]);
        Assert.Equal(["'name' is required."], error.Errors["name"]);
        Assert.Contains("400", error.Message, StringComparison.Ordinal);
        Assert.Contains("unknown step 'nope'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Original_error_envelope_is_parsed()
    {
        var client = Client(_ => Respond(
            HttpStatusCode.InternalServerError,
            "{\"error\":\"Failed to find resource: resource with name web and type app not found\"}",
            "application/json"));

        var error = await Assert.ThrowsAnyAsync<ConveyorApiException>(() => client.GetResourceAsync("app", "web"));

        Assert.Equal(HttpStatusCode.InternalServerError, error.Status);
        Assert.Equal("Failed to find resource: resource with name web and type app not found", error.Error);
        Assert.Null(error.Title);
        Assert.Empty(error.Errors);
        Assert.Contains("resource with name web", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Plain_text_error_body_becomes_the_detail()
    {
        var client = Client(_ => Respond(HttpStatusCode.NotFound, "Cannot GET /pipelines/p", "text/plain"));

        var error = await Assert.ThrowsAnyAsync<ConveyorApiException>(() => client.GetPipelineAsync("p"));

        Assert.Equal(HttpStatusCode.NotFound, error.Status);
        Assert.Equal("Cannot GET /pipelines/p", error.Detail);
        Assert.Equal("Cannot GET /pipelines/p", error.Body);
    }

    [Fact]
    public async Task Create_resource_posts_the_original_body_and_reads_the_run_id()
    {
        HttpRequestMessage? sent = null;
        string? body = null;
        var runId = Guid.NewGuid();
        var client = Client(
            request =>
            {
                sent = request;
                body = request.Content!.ReadAsStringAsync().GetAwaiter().GetResult();
                return Respond(HttpStatusCode.Created, $"{{\"message\":\"Resource created successfully\",\"name\":\"web\",\"runid\":\"{runId}\",\"version\":\"1\"}}", "application/json");
            },
            "http://conveyor.test/api/");

        var response = await client.CreateResourceAsync(new CreateResourceRequest
        {
            Name = "web",
            ResourceType = "app",
            Pipeline = "ci",
            Spec = JsonDocument.Parse("{\"image\":\"alpine:3\"}").RootElement,
        });

        Assert.Equal(HttpMethod.Post, sent!.Method);
        Assert.Equal("http://conveyor.test/api/resources", sent.RequestUri!.ToString());
        Assert.Equal("application/json", sent.Content!.Headers.ContentType!.MediaType);
        Assert.Equal("{\"name\":\"web\",\"resource\":\"app\",\"pipeline\":\"ci\",\"spec\":{\"image\":\"alpine:3\"}}", body);
        Assert.Equal(runId, response.RunId);
        Assert.Equal("web", response.Name);
        Assert.Equal("1", response.Version);
        Assert.Equal("Resource created successfully", response.Message);
    }

    [Fact]
    public async Task Pipeline_steps_omit_dependsOn_unless_given()
    {
        string? body = null;
        var client = Client(request =>
        {
            body = request.Content!.ReadAsStringAsync().GetAwaiter().GetResult();
            return Respond(HttpStatusCode.Created, body, "application/json");
        });

        var echoed = await client.CreatePipelineAsync(new Pipeline
        {
            Name = "ci",
            Resource = "app",
            Steps = [new PipelineStep { Id = "1", Name = "build", Driver = "build" }, new PipelineStep { Id = "2", Name = "test", Driver = "test", DependsOn = ["1"] }],
        });

        Assert.Equal(
            "{\"name\":\"ci\",\"description\":\"\",\"version\":\"\",\"resource\":\"app\",\"steps\":[{\"id\":\"1\",\"name\":\"build\",\"driver\":\"build\"},{\"id\":\"2\",\"name\":\"test\",\"driver\":\"test\",\"dependsOn\":[\"1\"]}],\"metadata\":null}",
            body);
        Assert.Equal(["1"], echoed.Steps[1].DependsOn);
    }

    [Fact]
    public async Task Every_request_carries_the_api_key_including_triggers_and_raw_json()
    {
        var runId = Guid.NewGuid();
        var seen = new List<string>();
        var client = new ConveyorClient(
            new HttpClient(new StubHandler(request =>
            {
                seen.Add($"{request.Method} {request.RequestUri!.AbsolutePath} {request.Headers.Authorization}");
                return Respond(HttpStatusCode.OK, RunJson(runId, "Running", "Running"), "application/json");
            })),
            new Uri("http://conveyor.test"))
        {
            ApiKey = "cvk_0123456789abcdef_secret",
        };

        await client.TriggerRunAsync("ci", "web", idempotencyKey: "k");
        await client.SendJsonAsync(HttpMethod.Get, "runs/" + runId);
        await client.GetRunAsync(runId);

        Assert.Equal(
            [$"POST /pipelines/ci/runs Bearer cvk_0123456789abcdef_secret", $"GET /runs/{runId} Bearer cvk_0123456789abcdef_secret", $"GET /runs/{runId} Bearer cvk_0123456789abcdef_secret"],
            seen);
    }

    [Fact]
    public async Task A_namespaced_client_scopes_object_routes_but_not_cluster_routes()
    {
        var paths = new List<string>();
        var root = Client(request =>
        {
            paths.Add(request.RequestUri!.PathAndQuery);
            return request.Method == HttpMethod.Delete ? new HttpResponseMessage(HttpStatusCode.NoContent) : Respond(HttpStatusCode.OK, "{}", "application/json");
        }, "http://conveyor.test/api/");
        var team = root.InNamespace("team-a");

        await team.GetPipelineAsync("ship");
        await team.ListRunsAsync(limit: 5);
        await team.DeleteSecretAsync("DB");
        await team.ListApiKeysAsync();
        await team.GetNamespaceAsync("team-a");
        await root.InNamespace("default").GetPipelineAsync("ship");

        Assert.Equal(
            ["/api/namespaces/team-a/pipelines/ship", "/api/namespaces/team-a/runs?limit=5", "/api/namespaces/team-a/secrets/DB", "/api/keys", "/api/namespaces/team-a", "/api/pipelines/ship"],
            paths);
        Assert.Equal("team-a", team.Namespace);
    }

    [Theory]
    [InlineData(400, typeof(ConveyorValidationApiException))]
    [InlineData(422, typeof(ConveyorValidationApiException))]
    [InlineData(401, typeof(ConveyorAccessApiException))]
    [InlineData(403, typeof(ConveyorAccessApiException))]
    [InlineData(404, typeof(ConveyorNotFoundApiException))]
    [InlineData(409, typeof(ConveyorConflictApiException))]
    [InlineData(429, typeof(ConveyorRateLimitApiException))]
    [InlineData(500, typeof(ConveyorApiException))]
    public async Task Each_problem_status_has_its_own_exception_type(int status, Type expected)
    {
        var client = Client(_ =>
        {
            var response = Respond((HttpStatusCode)status, """{"type":"urn:conveyor:problem:x","title":"t","status":0,"detail":"d","error":"d"}""", "application/problem+json");
            response.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(TimeSpan.FromSeconds(3));
            return response;
        });

        var error = await Assert.ThrowsAnyAsync<ConveyorApiException>(() => client.GetPipelineAsync("p"));

        Assert.IsType(expected, error);
        Assert.Equal("urn:conveyor:problem:x", error.Type);
        if (error is ConveyorRateLimitApiException limited)
        {
            Assert.Equal(TimeSpan.FromSeconds(3), limited.RetryAfter);
        }
    }

    [Fact]
    public async Task Delete_expects_no_content()
    {
        HttpRequestMessage? sent = null;
        var client = Client(request =>
        {
            sent = request;
            return new HttpResponseMessage(HttpStatusCode.NoContent);
        });

        await client.DeleteResourceDefinitionAsync("my app");

        Assert.Equal(HttpMethod.Delete, sent!.Method);
        Assert.Equal("/resource-definitions/my%20app", sent.RequestUri!.AbsolutePath);
    }

    [Fact]
    public async Task Run_info_is_read_with_string_statuses()
    {
        var runId = Guid.NewGuid();
        var client = Client(_ => Respond(HttpStatusCode.OK, RunJson(runId, "Failed", "Failed"), "application/json"));

        var run = await client.GetRunAsync(runId);

        Assert.Equal(runId, run.Id);
        Assert.Equal(RunStatus.Failed, run.Status);
        Assert.True(run.IsFinished);
        Assert.Equal(7, run.PipelineRevision);
        var step = Assert.Single(run.Steps);
        Assert.Equal(StepStatus.Failed, step.Status);
        Assert.Equal(["0"], step.DependsOn);
        Assert.True(step.WaitingForDriver);
        var attempt = Assert.Single(step.Attempts);
        Assert.False(attempt.Success);
        Assert.Null(attempt.PublishedAt);
        Assert.Equal("{\"k\":1}", attempt.Data!.Value.GetRawText());
    }

    [Fact]
    public async Task WaitForRunAsync_polls_until_the_run_reaches_a_final_status()
    {
        var runId = Guid.NewGuid();
        var calls = 0;
        var client = Client(_ => Interlocked.Increment(ref calls) switch
        {
            1 => Respond(HttpStatusCode.NotFound, "{\"error\":\"Run not found\"}", "application/json"),
            2 => Respond(HttpStatusCode.OK, RunJson(runId, "Running", "Running"), "application/json"),
            _ => Respond(HttpStatusCode.OK, RunJson(runId, "Succeeded", "Succeeded"), "application/json"),
        });

        var run = await client.WaitForRunAsync(runId, Deadlines.Event);

        Assert.Equal(RunStatus.Succeeded, run.Status);
        Assert.Equal(3, calls);
    }

    [Fact]
    public async Task WaitForRunAsync_times_out_with_the_last_status()
    {
        var runId = Guid.NewGuid();
        var client = Client(_ => Respond(HttpStatusCode.OK, RunJson(runId, "Running", "Running"), "application/json"));

        var error = await Assert.ThrowsAsync<TimeoutException>(() => client.WaitForRunAsync(runId, TimeSpan.FromMilliseconds(300)));

        Assert.Contains("Running", error.Message, StringComparison.Ordinal);
    }

    private static string RunJson(Guid id, string status, string stepStatus) => $$$"""
        {"id":"{{{id}}}","namespace":"default","pipeline":"ci","pipelineVersion":"1.0","pipelineRevision":7,
         "resourceType":"app","resourceName":"web","status":"{{{status}}}","message":"","createdAt":"2026-05-02T10:00:00Z",
         "startedAt":"2026-05-02T10:00:01Z","finishedAt":null,
         "steps":[{"id":"1","name":"build","driver":"build","dependsOn":["0"],"status":"{{{stepStatus}}}","attempt":1,
                   "waitingForDriver":true,"message":"boom","data":null,
                   "attempts":[{"number":1,"dispatchedAt":"2026-05-02T10:00:01Z","finishedAt":"2026-05-02T10:00:02Z",
                                "success":false,"message":"boom","data":{"k":1}}]}]}
        """;

    private static ConveyorClient Client(Func<HttpRequestMessage, HttpResponseMessage> respond, string baseAddress = "http://conveyor.test") =>
        new(new HttpClient(new StubHandler(respond)), new Uri(baseAddress));

    private static HttpResponseMessage Respond(HttpStatusCode status, string body, string mediaType) =>
        new(status) { Content = new StringContent(body, Encoding.UTF8, mediaType) };

    private sealed class StubHandler(Func<HttpRequestMessage, HttpResponseMessage> respond) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
            Task.FromResult(respond(request));
    }
}
