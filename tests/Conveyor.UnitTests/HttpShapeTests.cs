using System.Text.Json;
using Conveyor.Api.Http;
using Conveyor.Client;
using Conveyor.Grains.Pipelines;

namespace Conveyor.UnitTests;

/// <summary>
/// Pins the HTTP JSON shapes the original's contract fixes, byte for byte, as the server writes them (ASP.NET Core's
/// web defaults) and as the client writes them (its source-generated context): one set of types, one shape.
/// </summary>
public sealed class HttpShapeTests
{
    private static readonly JsonSerializerOptions Server = new(JsonSerializerDefaults.Web);

    private static void AssertBoth<T>(string expected, T value)
    {
        Assert.Equal(expected, JsonSerializer.Serialize(value, Server));
        Assert.Equal(expected, JsonSerializer.Serialize(value, (System.Text.Json.Serialization.Metadata.JsonTypeInfo<T>)ClientJsonContext.Default.GetTypeInfo(typeof(T))!));
    }

    [Fact]
    public void Resource_creation_answers_the_original_keys_in_alphabetical_order()
    {
        AssertBoth(
            """{"message":"Resource created successfully","name":"web","runid":"6f0c2a4e-0000-4000-8000-000000000001","version":"1"}""",
            new CreateResourceResponse { Message = "Resource created successfully", Name = "web", RunId = Guid.Parse("6f0c2a4e-0000-4000-8000-000000000001"), Version = "1" });
    }

    [Fact]
    public void Resource_definition_has_the_original_fields_in_order()
    {
        AssertBoth(
            """{"id":"11111111-2222-3333-4444-555555555555","name":"app","description":"d","version":"1.0.0","schema":{"type":"object"}}""",
            new ResourceDefinition
            {
                Id = "11111111-2222-3333-4444-555555555555",
                Name = "app",
                Description = "d",
                Version = "1.0.0",
                Schema = JsonSerializer.Deserialize<JsonElement>("""{"type":"object"}"""),
            });
        AssertBoth("""{"id":"i","name":"app","description":"","version":"","schema":null}""", new ResourceDefinition { Id = "i", Name = "app" });
    }

    [Fact]
    public void An_original_pipeline_is_echoed_with_the_original_fields_and_its_revision()
    {
        var body = JsonSerializer.Deserialize<Pipeline>("""{"name":"p","resource":"pipe4","steps":[{"id":"1","name":"a","driver":"a"}]}""", JsonBody.Options)!;
        var spec = PipelineMapping.ToSpec(body);
        PipelineValidator.ValidateAndNormalize(spec);
        spec.Revision = 1;

        AssertBoth(
            """{"name":"p","description":"","version":"","resource":"pipe4","steps":[{"id":"1","name":"a","driver":"a"}],"metadata":null,"revision":1}""",
            PipelineMapping.ToDto(spec));
    }

    [Fact]
    public void Pipeline_extensions_appear_only_when_set_and_never_a_webhook_secret()
    {
        var body = JsonSerializer.Deserialize<Pipeline>(
            """
            {"name":"p","resource":"r","timeout":"30m","failurePolicy":"continue","retry":{"maxAttempts":2},
             "variables":{"REGION":"eu"},"concurrency":2,"concurrencyGroup":{"key":"spec.branch","onConflict":"cancel-in-progress"},
             "schedules":[{"name":"nightly","cron":"0 2 * * *","resource":"web"}],
             "webhooks":[{"name":"push","secret":"change-me-please","resource":{"name":"/repository/name"}}],
             "steps":[{"id":"b","driver":"d","dependsOn":[],"timeout":"10m","params":{"k":1},"allowFailure":true,"secrets":["DB"]}]}
            """,
            JsonBody.Options)!;
        var spec = PipelineMapping.ToSpec(body);
        PipelineValidator.ValidateAndNormalize(spec);
        spec.Revision = 3;

        AssertBoth(
            """{"name":"p","description":"","version":"","resource":"r","steps":[{"id":"b","name":"","driver":"d","dependsOn":[],"timeout":"10m","params":{"k":1},"allowFailure":true,"secrets":["DB"]}],"metadata":null,"timeout":"30m","failurePolicy":"continue","retry":{"maxAttempts":2,"initialDelay":"1s","maxDelay":"5m","multiplier":2,"jitter":0.2},"variables":{"REGION":"eu"},"concurrency":2,"concurrencyGroup":{"key":"spec.branch","onConflict":"cancel-in-progress"},"schedules":[{"name":"nightly","cron":"0 2 * * *","timeZone":"UTC","resource":"web","priority":3,"missedFire":"fireOnce"}],"webhooks":[{"name":"push","resource":{"name":"/repository/name"},"priority":3,"url":"/hooks/default/p/push"}],"revision":3}""",
            PipelineMapping.ToDto(spec, "/hooks/default/p"));
    }

    [Fact]
    public void Health_is_the_original_status_and_unix_time()
    {
        AssertBoth("""{"status":"healthy","time":1714650000}""", new HealthStatus { Time = 1714650000 });
    }

    [Fact]
    public void A_run_page_has_items_and_a_null_next_cursor_on_its_last_page()
    {
        AssertBoth("""{"items":[],"nextCursor":null}""", new RunPage());
    }
}
