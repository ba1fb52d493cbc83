using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Conveyor.IntegrationTests;

/// <summary>Every client mistake gets a ProblemDetails with the original's <c>error</c> member — never a 500 — and changes nothing.</summary>
[Collection(EngineCollection.Name)]
public sealed class BadInputTests(EngineFixture fx)
{
    private async Task<JsonElement> SendAsync(HttpMethod method, string path, string? body, HttpStatusCode expected, string? contentType = "application/json")
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is not null)
        {
            request.Content = new ByteArrayContent(Encoding.UTF8.GetBytes(body));
            if (contentType is not null)
            {
                request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
            }
        }

        using var response = await fx.Host.Http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == expected, $"{method} {path}: expected {(int)expected}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonDocument.Parse(text).RootElement.Clone();
        Assert.Equal((int)expected, problem.GetProperty("status").GetInt32());
        Assert.StartsWith("urn:conveyor:problem:", problem.GetProperty("type").GetString(), StringComparison.Ordinal);
        Assert.False(string.IsNullOrEmpty(problem.GetProperty("error").GetString()));
        Assert.Equal(problem.GetProperty("detail").GetString(), problem.GetProperty("error").GetString());
        return problem;
    }

    private async Task<string> SeedAsync()
    {
        var type = EngineFixture.Unique("bad");
        await fx.CreateDefinitionAsync(type);
        await fx.Host.PostJsonAsync("/pipelines", new { name = type, resource = type, steps = new[] { new { id = "1", name = "a", driver = "a" } } });
        return type;
    }

    [Fact]
    public async Task Unknown_resource_type_is_404_naming_the_type()
    {
        var problem = await SendAsync(HttpMethod.Post, "/resources", """{"name":"x","resource":"no-such-type","spec":{}}""", HttpStatusCode.NotFound);
        Assert.Contains("no-such-type", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Spec_failing_the_schema_is_400_listing_every_schema_error()
    {
        var type = await SeedAsync();
        var problem = await SendAsync(HttpMethod.Post, "/resources", $$$"""{"name":"x","resource":"{{{type}}}","spec":{"image":5,"replicas":0}}""", HttpStatusCode.BadRequest);
        Assert.StartsWith("Resource validation failed", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        var errors = problem.GetProperty("errors");
        Assert.True(errors.TryGetProperty("spec.image", out _), errors.ToString());
        Assert.True(errors.TryGetProperty("spec.replicas", out _), errors.ToString());
        await AssertResourceAbsentAsync(type, "x");
    }

    [Fact]
    public async Task Missing_required_spec_property_is_400()
    {
        var type = await SeedAsync();
        var problem = await SendAsync(HttpMethod.Post, "/resources", $$$"""{"name":"x","resource":"{{{type}}}","spec":{}}""", HttpStatusCode.BadRequest);
        Assert.Contains("image", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Pipeline_of_another_type_and_missing_pipeline_are_rejected_without_storing_the_resource()
    {
        var type = await SeedAsync();
        var other = await SeedAsync();
        var mismatch = await SendAsync(HttpMethod.Post, "/resources", $$$"""{"name":"x","resource":"{{{type}}}","pipeline":"{{{other}}}","spec":{"image":"i"}}""", HttpStatusCode.BadRequest);
        Assert.Equal($"Resource type {type} does not match pipeline resource type {other}", mismatch.GetProperty("detail").GetString());
        await SendAsync(HttpMethod.Post, "/resources", $$$"""{"name":"x","resource":"{{{type}}}","pipeline":"missing","spec":{"image":"i"}}""", HttpStatusCode.NotFound);
        await AssertResourceAbsentAsync(type, "x");
    }

    [Theory]
    [InlineData("""{"name":"p","resource":"T","steps":[{"id":"1","driver":"a"}]}""", "resource")]
    [InlineData("""{"name":"p","resource":"t","steps":[]}""", "steps")]
    [InlineData("""{"name":"p","resource":"t","steps":[{"id":"1","driver":"a"},{"id":"1","driver":"b"}]}""", "steps[1].id")]
    [InlineData("""{"name":"p","resource":"t","steps":[{"id":"1","driver":"a","dependsOn":["9"]}]}""", "steps[0].dependsOn")]
    [InlineData("""{"name":"p","resource":"t","steps":[{"id":"a","driver":"a","dependsOn":["c"]},{"id":"b","driver":"a","dependsOn":["a"]},{"id":"c","driver":"a","dependsOn":["b"]}]}""", "steps")]
    [InlineData("""{"name":"p","resource":"t","steps":[{"id":"1","driver":""}]}""", "steps[0].driver")]
    [InlineData("""{"name":"p","resource":"t","steps":[{"id":"1","driver":"a","timeout":"-5s"}]}""", "steps[0].timeout")]
    [InlineData("""{"name":"p","resource":"t","steps":[{"id":"1","driver":"a","timeout":"soon"}]}""", "steps[0].timeout")]
    [InlineData("""{"name":"p","resource":"t","steps":[{"id":"1","driver":"a","retry":{"maxAttempts":0}}]}""", "steps[0].retry.maxAttempts")]
    [InlineData("""{"name":"","resource":"t","steps":[{"id":"1","driver":"a"}]}""", "name")]
    [InlineData("""{"name":"p","resource":"t","failurePolicy":"sometimes","steps":[{"id":"1","driver":"a"}]}""", "failurePolicy")]
    public async Task Invalid_pipeline_is_400_naming_the_field(string body, string field)
    {
        var problem = await SendAsync(HttpMethod.Post, "/pipelines", body, HttpStatusCode.BadRequest);
        Assert.True(problem.GetProperty("errors").TryGetProperty(field, out var messages), problem.ToString());
        Assert.NotEmpty(messages.EnumerateArray());
    }

    [Fact]
    public async Task Cycle_is_named_in_the_error()
    {
        var type = await SeedAsync();
        var problem = await SendAsync(
            HttpMethod.Post,
            "/pipelines",
            $$$"""{"name":"cyclic","resource":"{{{type}}}","steps":[{"id":"a","driver":"d","dependsOn":["c"]},{"id":"b","driver":"d","dependsOn":["a"]},{"id":"c","driver":"d","dependsOn":["b"]}]}""",
            HttpStatusCode.BadRequest);
        Assert.Matches(@"dependency cycle: (a -> b -> c -> a|b -> c -> a -> b|c -> a -> b -> c)", problem.GetProperty("detail").GetString());
        await SendAsync(HttpMethod.Get, "/pipelines/cyclic", null, HttpStatusCode.NotFound);
    }

    [Theory]
    [InlineData("")]
    [InlineData("UPPER")]
    [InlineData("under_score")]
    [InlineData("-leading")]
    [InlineData("trailing-")]
    [InlineData("dots.are.subjects")]
    [InlineData("a-name-that-is-far-too-long-to-be-a-dns-label-because-it-has-64c")]
    public async Task Names_that_are_not_dns_labels_are_400(string name)
    {
        var body = JsonSerializer.Serialize(new { name, description = "", version = "1", schema = new { type = "object" } });
        var problem = await SendAsync(HttpMethod.Post, "/resource-definitions", body, HttpStatusCode.BadRequest);
        Assert.True(problem.GetProperty("errors").TryGetProperty("name", out _), problem.ToString());
    }

    [Theory]
    [InlineData("{\"name\":")]
    [InlineData("[1,2,3]")]
    [InlineData("not json at all")]
    [InlineData("null")]
    public async Task Body_that_is_not_a_json_object_is_400(string body)
    {
        await SendAsync(HttpMethod.Post, "/resource-definitions", body, HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task Empty_body_is_400()
    {
        await SendAsync(HttpMethod.Post, "/resources", "", HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task Non_string_metadata_is_400_naming_the_key()
    {
        var type = await SeedAsync();
        var problem = await SendAsync(HttpMethod.Post, "/resources", $$$"""{"name":"x","resource":"{{{type}}}","metadata":{"a":1},"spec":{"image":"i"}}""", HttpStatusCode.BadRequest);
        Assert.True(problem.GetProperty("errors").TryGetProperty("metadata.a", out _), problem.ToString());
    }

    [Fact]
    public async Task Body_over_the_size_limit_is_413()
    {
        var big = "{\"name\":\"big\",\"description\":\"" + new string('x', 1024 * 1024 + 10) + "\"}";
        await SendAsync(HttpMethod.Post, "/resource-definitions", big, HttpStatusCode.RequestEntityTooLarge);
        await SendAsync(HttpMethod.Get, "/resource-definitions/big", null, HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Non_json_content_type_is_415()
    {
        await SendAsync(HttpMethod.Post, "/resource-definitions", "name=x", HttpStatusCode.UnsupportedMediaType, "application/x-www-form-urlencoded");
    }

    [Fact]
    public async Task Body_without_content_type_is_accepted_like_json()
    {
        var name = EngineFixture.Unique("noct");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/resource-definitions")
        {
            Content = new ByteArrayContent(Encoding.UTF8.GetBytes($$$"""{"name":"{{{name}}}","schema":{"type":"object"}}""")),
        };
        using var response = await fx.Host.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
    }

    [Fact]
    public async Task Duplicate_definition_and_resource_are_409()
    {
        var type = await SeedAsync();
        var problem = await SendAsync(HttpMethod.Post, "/resource-definitions", $$$"""{"name":"{{{type}}}","schema":{}}""", HttpStatusCode.Conflict);
        Assert.Equal($"resource definition with name {type} already exists", problem.GetProperty("detail").GetString());
        await fx.Host.PostJsonAsync("/resources", new { name = "dup", resource = type, spec = new { image = "one" } });
        await SendAsync(HttpMethod.Post, "/resources", $$$"""{"name":"dup","resource":"{{{type}}}","spec":{"image":"two"}}""", HttpStatusCode.Conflict);
        var stored = await fx.Host.GetJsonAsync($"/resources/{type}/dup");
        Assert.Equal("one", stored.GetProperty("spec").GetProperty("image").GetString());
    }

    [Fact]
    public async Task Missing_objects_are_404_not_500()
    {
        var type = await SeedAsync();
        await SendAsync(HttpMethod.Get, "/resource-definitions/nope", null, HttpStatusCode.NotFound);
        await SendAsync(HttpMethod.Put, "/resource-definitions/nope", """{"name":"nope","schema":{}}""", HttpStatusCode.NotFound);
        await SendAsync(HttpMethod.Delete, "/resource-definitions/nope", null, HttpStatusCode.NotFound);
        await SendAsync(HttpMethod.Get, $"/resources/{type}/nope", null, HttpStatusCode.NotFound);
        await SendAsync(HttpMethod.Put, $"/resources/{type}/nope", """{"spec":{"image":"i"}}""", HttpStatusCode.NotFound);
        await SendAsync(HttpMethod.Get, $"/resources/{type}/nope/99", null, HttpStatusCode.NotFound);
        await SendAsync(HttpMethod.Get, "/pipelines/nope", null, HttpStatusCode.NotFound);
        await SendAsync(HttpMethod.Get, $"/runs/{Guid.NewGuid()}", null, HttpStatusCode.NotFound);
        await SendAsync(HttpMethod.Get, "/runs/not-a-uuid", null, HttpStatusCode.BadRequest);
        await SendAsync(HttpMethod.Get, "/no/such/route", null, HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Wrong_method_is_405_with_allow_header()
    {
        using var response = await fx.Host.Http.DeleteAsync("/pipelines");
        Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
        Assert.Contains("POST", response.Content.Headers.Allow, StringComparer.Ordinal);
        Assert.Contains("GET", response.Content.Headers.Allow, StringComparer.Ordinal);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task Resource_without_type_is_400_as_in_the_original()
    {
        var problem = await SendAsync(HttpMethod.Post, "/resources", """{"name":"x","spec":{}}""", HttpStatusCode.BadRequest);
        Assert.Equal("Resource type is required", problem.GetProperty("error").GetString());
    }

    [Fact]
    public async Task Definition_whose_schema_is_not_a_schema_is_400()
    {
        var problem = await SendAsync(HttpMethod.Post, "/resource-definitions", """{"name":"broken-schema","schema":{"type":12}}""", HttpStatusCode.BadRequest);
        Assert.True(problem.GetProperty("errors").TryGetProperty("schema.type", out _), problem.ToString());
    }

    [Fact]
    public async Task Definition_with_external_schema_reference_is_refused_without_fetching_it()
    {
        var problem = await SendAsync(
            HttpMethod.Post,
            "/resource-definitions",
            """{"name":"external-ref","schema":{"$ref":"file:///etc/passwd"}}""",
            HttpStatusCode.BadRequest);
        Assert.Contains("not allowed", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Resource_of_a_definition_without_schema_is_400()
    {
        var type = EngineFixture.Unique("noschema");
        await fx.Host.PostJsonAsync("/resource-definitions", new { name = type, schema = (object?)null });
        var problem = await SendAsync(HttpMethod.Post, "/resources", $$$"""{"name":"x","resource":"{{{type}}}","spec":{}}""", HttpStatusCode.BadRequest);
        Assert.Equal("Resource definition schema is required", problem.GetProperty("error").GetString());
    }

    private async Task AssertResourceAbsentAsync(string type, string name)
    {
        using var response = await fx.Host.Http.GetAsync($"/resources/{type}/{name}");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Fact]
    public async Task A_definition_whose_schema_nests_as_deep_as_input_allows_is_listed_and_read_back()
    {
        // The body reaches 63 levels of the 64 allowed; answers wrap the schema in a few more (page, items, item).
        var type = EngineFixture.Unique("deep");
        var schema = string.Concat(Enumerable.Repeat("{\"not\":", 61)) + "{}" + new string('}', 61);
        var body = $$"""{"name":"{{type}}","version":"1","schema":{{schema}}}""";
        using var created = await fx.Host.Http.PostAsync("/resource-definitions", new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);

        using var one = await fx.Host.Http.GetAsync($"/resource-definitions/{type}");
        Assert.Equal(HttpStatusCode.OK, one.StatusCode);
        using var list = await fx.Host.Http.GetAsync($"/resource-definitions?prefix={type}");
        Assert.Equal(HttpStatusCode.OK, list.StatusCode);
        Assert.Contains(type, await list.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}
