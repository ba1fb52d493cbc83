using System.Reflection;
using Microsoft.OpenApi;
using Microsoft.OpenApi.Reader;

namespace Conveyor.OpenApi.Tests;

/// <summary>
/// The served document is complete OpenAPI 3.1 as the current Microsoft.OpenApi reads it: no errors, a body schema
/// on every write, every problem answer as problem+json, the bearer scheme declared and applied, enums as enums.
/// </summary>
[Collection(SiloCollection.Name)]
public sealed class OpenApiDocumentTests(SiloFixture fx)
{
    /// <summary>Routes that authenticate otherwise (a signature, a step token) or not at all.</summary>
    private static readonly string[] Anonymous = ["Health", "Healthz", "Readyz", "DeliverWebhook", "GetStepSecrets"];

    private (OpenApiDocument Document, OpenApiDiagnostic Diagnostic) Read()
    {
        var (document, diagnostic) = OpenApiDocument.Parse(fx.Document, "json", new OpenApiReaderSettings());
        Assert.NotNull(document);
        return (document!, diagnostic!);
    }

    private IEnumerable<(string Path, HttpMethod Method, OpenApiOperation Operation)> Operations()
    {
        var (document, _) = Read();
        foreach (var (path, item) in document.Paths)
        {
            foreach (var (method, operation) in item.Operations ?? [])
            {
                yield return (path, method, operation);
            }
        }
    }

    [Fact]
    public void The_document_is_OpenAPI_3_1_with_no_reading_or_validation_error()
    {
        var (document, diagnostic) = Read();

        Assert.Equal(OpenApiSpecVersion.OpenApi3_1, diagnostic.SpecificationVersion);
        Assert.Empty(diagnostic.Errors.Select(e => e.ToString()));
        Assert.Empty(document.Validate(ValidationRuleSet.GetDefaultRuleSet())!.Select(e => e.ToString()));
        Assert.True(Operations().Count() >= 80, $"{Operations().Count()} operations");
    }

    [Fact]
    public void The_title_is_the_product_and_the_version_the_build()
    {
        var (document, _) = Read();
        var expected = typeof(Conveyor.Client.ConveyorClient).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()!.InformationalVersion.Split('+')[0];

        Assert.Equal("Conveyor", document.Info.Title);
        Assert.Equal(expected, document.Info.Version);
    }

    [Fact]
    public void Every_POST_and_PUT_has_a_JSON_request_body_with_a_schema()
    {
        var writes = Operations().Where(o => o.Method == HttpMethod.Post || o.Method == HttpMethod.Put)
            // A retry, a pause and a resume have no body: the run is named by the path; re-encryption takes no input.
            .Where(o => !new[] { "RetryRun", "PauseRun", "ResumeRun", "ReencryptSecrets" }.Any(n => o.Operation.OperationId!.StartsWith(n, StringComparison.Ordinal))).ToList();

        Assert.True(writes.Count >= 24, $"{writes.Count} writes");
        Assert.All(writes, o =>
        {
            Assert.True(o.Operation.RequestBody?.Content?.TryGetValue("application/json", out var json) == true && json.Schema is not null, $"{o.Method} {o.Path}: no JSON body schema");
        });
    }

    [Fact]
    public void Every_operation_lists_its_problem_answers_as_problem_json()
    {
        Assert.All(Operations(), o =>
        {
            var id = o.Operation.OperationId!;
            var problems = o.Operation.Responses!.Where(r => r.Key[0] is '4' or '5').ToList();
            Assert.Contains(problems, r => r.Key == "400");
            Assert.All(problems, r => Assert.True(
                r.Value.Content?.TryGetValue("application/problem+json", out var media) == true && media.Schema is OpenApiSchemaReference { Reference.Id: "ConveyorProblem" },
                $"{o.Method} {o.Path} {r.Key}: not a ConveyorProblem problem+json"));
            if (o.Path.Contains('{', StringComparison.Ordinal))
            {
                Assert.Contains(problems, r => r.Key == "404");
            }

            if (o.Method != HttpMethod.Get && !Anonymous.Contains(id))
            {
                Assert.Contains(problems, r => r.Key == "409");
            }

            if (o.Operation.RequestBody is not null)
            {
                Assert.Contains(problems, r => r.Key == "413");
                Assert.Contains(problems, r => r.Key == "415");
            }

            if (!Anonymous.Contains(id))
            {
                Assert.Contains(problems, r => r.Key == "401");
                Assert.Contains(problems, r => r.Key == "403");
                // Reads are rate-limited per key too (Conveyor:Limits:ReadRequestsPerSecond).
                Assert.Contains(problems, r => r.Key == "429");
            }
        });
        var hook = Operations().Single(o => o.Operation.OperationId == "DeliverWebhook").Operation;
        Assert.Contains("422", hook.Responses!.Keys);
    }

    [Fact]
    public void The_bearer_scheme_is_declared_and_applied_to_every_operation_that_needs_a_key()
    {
        var (document, _) = Read();
        var bearer = Assert.IsType<OpenApiSecurityScheme>(document.Components!.SecuritySchemes!["bearer"]);
        Assert.Equal(SecuritySchemeType.Http, bearer.Type);
        Assert.Equal("bearer", bearer.Scheme);

        Assert.All(Operations().Where(o => !Anonymous.Contains(o.Operation.OperationId!)), o =>
            Assert.Contains(o.Operation.Security ?? [], r => r.Keys.Any(k => k.Reference.Id == "bearer")));
        Assert.All(Operations().Where(o => o.Operation.OperationId is "Health" or "DeliverWebhook"), o => Assert.Empty(o.Operation.Security ?? []));
        var secrets = Operations().Single(o => o.Operation.OperationId == "GetStepSecrets").Operation;
        Assert.Contains(secrets.Security!, r => r.Keys.Any(k => k.Reference.Id == "stepToken"));
    }

    [Fact]
    public void The_routes_headers_and_content_types_are_described()
    {
        var ops = Operations().ToDictionary(o => o.Operation.OperationId!, o => o.Operation);
        var signature = ops["DeliverWebhook"].Parameters!.Single(p => p.Name == "X-Hub-Signature-256");
        Assert.Equal(ParameterLocation.Header, signature.In);
        Assert.True(signature.Required);
        Assert.Contains(ops["DeliverWebhook"].Parameters!, p => p.Name == "X-GitHub-Delivery");
        Assert.Contains(ops["TriggerRun"].Parameters!, p => p.Name == "Idempotency-Key" && p.In == ParameterLocation.Header);
        Assert.Equal(["image/svg+xml", "text/vnd.graphviz", "text/vnd.mermaid"], ops["GetRunGraph"].Responses!["200"].Content!.Keys.Order(StringComparer.Ordinal));
        Assert.Contains("text/event-stream", ops["StreamRunLogs"].Responses!["200"].Content!.Keys);
        foreach (var feed in new[] { "StreamRunEvents", "StreamNamespaceEvents" })
        {
            Assert.Contains("text/event-stream", ops[feed].Responses!["200"].Content!.Keys);
            Assert.Contains(ops[feed].Parameters!, p => p.Name == "Last-Event-ID" && p.In == ParameterLocation.Header);
        }

        Assert.Contains(ops["StreamNamespaceEvents"].Parameters!, p => p.Name == "pipeline");
        Assert.Contains(ops["StreamNamespaceEvents"].Parameters!, p => p.Name == "status");
        foreach (var decision in new[] { "ApproveStep", "RejectStep" })
        {
            Assert.Equal("ApprovalRequest", Assert.IsType<OpenApiSchemaReference>(ops[decision].RequestBody!.Content!["application/json"].Schema).Reference.Id);
        }
        foreach (var list in new[] { "ListPipelines", "ListResourceDefinitions", "ListResources", "ListResourcesOfType", "ListPipelinesInNamespace" })
        {
            Assert.Contains(ops[list].Parameters!, p => p.Name == "cursor");
            Assert.Contains(ops[list].Parameters!, p => p.Name == "limit");
        }
    }

    [Fact]
    public void Fixed_sets_of_values_are_enums()
    {
        var (document, _) = Read();
        var schemas = document.Components!.Schemas!;
        IEnumerable<string> Enum(IOpenApiSchema schema) => (schema.Enum ?? []).Where(v => v is not null).Select(v => v!.GetValue<string>());
        IOpenApiSchema Property(string type, string property) => schemas[type].Properties![property];

        Assert.Equal(Enum<Conveyor.Contracts.RunStatus>(), Enum(schemas["RunStatus"]));
        Assert.Equal(Enum<Conveyor.Contracts.StepStatus>(), Enum(schemas["StepStatus"]));
        Assert.Equal(["failFast", "continue"], Enum(Property("Pipeline", "failurePolicy")));
        Assert.Equal(["queue", "cancel-in-progress"], Enum(Property("ConcurrencyGroup", "onConflict")));
        Assert.Equal(["fireOnce", "skip"], Enum(Property("PipelineSchedule", "missedFire")));
        Assert.Equal(["admin", "operator", "viewer"], Enum(Property("CreateApiKeyRequest", "role")));
        var ops = Operations().ToDictionary(o => o.Operation.OperationId!, o => o.Operation);
        Assert.Equal(Enum<Conveyor.Contracts.RunStatus>(), Enum(ops["ListRuns"].Parameters!.Single(p => p.Name == "status").Schema!));
        Assert.Equal(["svg", "mermaid", "dot"], Enum(ops["GetRunGraph"].Parameters!.Single(p => p.Name == "format").Schema!));
        Assert.Equal("uuid", Property("RunInfo", "id").Format);
        Assert.Equal("date-time", Property("RunInfo", "createdAt").Format);
    }

    [Fact]
    public async Task The_reference_page_renders_the_document_when_enabled()
    {
        using var page = await fx.Silo.Http.GetAsync("/reference/");
        var html = await page.Content.ReadAsStringAsync();

        Assert.Equal(System.Net.HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        Assert.True(html.Contains("openapi/conveyor.json", StringComparison.Ordinal), html);
    }

    private static string[] Enum<T>()
        where T : struct, System.Enum => System.Enum.GetNames<T>();
}
