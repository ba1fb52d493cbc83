using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Conveyor.IntegrationTests;

/// <summary>Webhooks: HMAC signature check, mapping the body to the run's resource, idempotent redelivery.</summary>
[Collection(EngineCollection.Name)]
public sealed class WebhookTests(EngineFixture fx)
{
    private const string Secret = "s3cret-hook-key-of-at-least-32-characters";

    private async Task<(string Type, HeldDriver Driver)> SetupAsync()
    {
        var (type, driver) = await Flow.PipelineAsync(fx.Host, fx.Nats.Url, new
        {
            webhooks = new[]
            {
                new { name = "push", secret = Secret, priority = 4, resource = new Dictionary<string, string> { ["name"] = "/repository/name", ["spec.branch"] = "/ref", ["metadata.sha"] = "/after" } },
            },
        });
        driver.Open();
        return (type, driver);
    }

    private static string Sign(string body, string secret = Secret) =>
        "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), Encoding.UTF8.GetBytes(body)));

    private async Task<(HttpStatusCode Status, JsonElement Body)> DeliverAsync(string type, string body, string? signature, string? delivery = null, string hook = "push")
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/hooks/default/{type}/{hook}") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        if (signature is not null)
        {
            request.Headers.Add("X-Hub-Signature-256", signature);
        }

        if (delivery is not null)
        {
            request.Headers.Add("X-GitHub-Delivery", delivery);
        }

        using var response = await fx.Host.Http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone());
    }

    private async Task<int> RunCountAsync(string type) => (await fx.Host.GetJsonAsync($"/pipelines/{type}/runs")).GetProperty("items").GetArrayLength();

    private static string Push(string repo = "main", string branch = "refs/heads/feature-x") =>
        JsonSerializer.Serialize(new { @ref = branch, after = "abc123", repository = new { name = repo } });

    [Fact]
    public async Task Signed_delivery_starts_a_run_with_the_mapped_resource_and_a_redelivery_returns_the_same_run()
    {
        var (type, driver) = await SetupAsync();
        await using var held = driver;
        var body = Push();

        var (status, first) = await DeliverAsync(type, body, Sign(body), "delivery-1");
        Assert.Equal(HttpStatusCode.Accepted, status);
        Assert.True(first.GetProperty("created").GetBoolean());
        var runId = first.GetProperty("runid").GetString()!;
        var run = await fx.Host.WaitForRunAsync(runId, Flow.Timeout);
        Assert.Equal("Succeeded", run.GetProperty("status").GetString());
        Assert.Equal("webhook:push", run.GetProperty("trigger").GetString());
        Assert.Equal("delivery-1", run.GetProperty("triggerId").GetString());
        Assert.Equal(4, run.GetProperty("priority").GetInt32());
        var payload = JsonDocument.Parse(driver.Raw.Received.Single().Message.GetProperty("payload").GetString()!).RootElement;
        Assert.Equal("main", payload.GetProperty("name").GetString());
        Assert.Equal("refs/heads/feature-x", payload.GetProperty("spec").GetProperty("branch").GetString());
        Assert.Equal("abc123", payload.GetProperty("metadata").GetProperty("sha").GetString());

        var (againStatus, again) = await DeliverAsync(type, body, Sign(body), "delivery-1");
        Assert.Equal(HttpStatusCode.OK, againStatus);
        Assert.False(again.GetProperty("created").GetBoolean());
        Assert.Equal(runId, again.GetProperty("runid").GetString());
        Assert.Equal(1, await RunCountAsync(type));
        Assert.Single(driver.Raw.Received);

        // Another delivery is another signed body; the same body under another delivery id is a replay (see
        // WebhookHardeningTests) and starts nothing.
        var next = Push(branch: "refs/heads/feature-y");
        var (otherStatus, other) = await DeliverAsync(type, next, Sign(next), "delivery-2");
        Assert.Equal(HttpStatusCode.Accepted, otherStatus);
        Assert.NotEqual(runId, other.GetProperty("runid").GetString());
    }

    [Fact]
    public async Task Missing_or_wrong_signature_is_401_and_stores_nothing()
    {
        var (type, driver) = await SetupAsync();
        await using var held = driver;
        var body = Push();

        foreach (var signature in new[] { null, Sign(body, "another-secret"), Sign(body + " "), "sha256=zz", "sha1=" + new string('0', 40) })
        {
            var (status, problem) = await DeliverAsync(type, body, signature, "d-" + Guid.NewGuid());
            Assert.Equal(HttpStatusCode.Unauthorized, status);
            Assert.Equal("urn:conveyor:problem:unauthorized", problem.GetProperty("type").GetString());
        }

        Assert.Equal(0, await RunCountAsync(type));
        Assert.True(driver.Raw.Received.IsEmpty);
    }

    [Fact]
    public async Task A_body_that_does_not_map_is_rejected_with_the_field_and_stores_nothing()
    {
        var (type, driver) = await SetupAsync();
        await using var held = driver;

        var noRef = JsonSerializer.Serialize(new { after = "x", repository = new { name = "main" } });
        var (status, problem) = await DeliverAsync(type, noRef, Sign(noRef));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, status);
        Assert.Contains("'/ref'", problem.GetProperty("errors").GetProperty("resource.spec.branch")[0].GetString(), StringComparison.Ordinal);

        var badName = Push(repo: "Not A Name");
        (status, problem) = await DeliverAsync(type, badName, Sign(badName));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, status);
        Assert.True(problem.GetProperty("errors").TryGetProperty("resource.name", out _));

        var wrongType = JsonSerializer.Serialize(new { @ref = 42, after = "x", repository = new { name = "main" } });
        (status, _) = await DeliverAsync(type, wrongType, Sign(wrongType));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, status);

        (status, _) = await DeliverAsync(type, "not json", Sign("not json"));
        Assert.Equal(HttpStatusCode.BadRequest, status);

        var body = Push();
        (status, _) = await DeliverAsync(type, body, Sign(body), hook: "nope");
        Assert.Equal(HttpStatusCode.NotFound, status);

        Assert.Equal(0, await RunCountAsync(type));
    }

    [Fact]
    public async Task The_secret_is_never_returned_and_a_write_without_it_keeps_it()
    {
        var (type, driver) = await SetupAsync();
        await using var held = driver;

        var pipeline = await fx.Host.GetJsonAsync($"/pipelines/{type}");
        Assert.DoesNotContain(Secret, pipeline.GetRawText(), StringComparison.Ordinal);
        var hook = pipeline.GetProperty("webhooks")[0];
        Assert.Equal($"/hooks/default/{type}/push", hook.GetProperty("url").GetString());
        Assert.False(hook.TryGetProperty("secret", out _));

        using var put = await fx.Host.Http.PutAsync($"/pipelines/{type}", new StringContent(pipeline.GetRawText(), Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        var body = Push();
        var (status, _) = await DeliverAsync(type, body, Sign(body), "after-put");
        Assert.Equal(HttpStatusCode.Accepted, status);

        var fresh = JsonSerializer.Serialize(new { name = type, resource = type, steps = new[] { new { id = "a", driver = "d" } }, webhooks = new[] { new { name = "new", resource = new { name = "/n" } } } });
        using var missing = await fx.Host.Http.PutAsync($"/pipelines/{type}", new StringContent(fresh, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, missing.StatusCode);
        Assert.Contains("webhooks[0].secret", await missing.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}
