using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Conveyor.Grains.Abstractions;
using Conveyor.Testing;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;

namespace Conveyor.IntegrationTests.Security;

/// <summary>
/// Webhook keys are encrypted at rest and never copied into runs; a signed delivery cannot be replayed into a second
/// run; timestamped signatures expire; each hook is rate-limited.
/// </summary>
[Collection(HardeningCollection.Name)]
public sealed class WebhookHardeningTests(HardeningFixture fx)
{
    private const string Secret = "0123456789abcdef-a-webhook-key-of-48-characters";

    private const string ScanScript = """
        local out = {}
        for _, k in ipairs(redis.call('KEYS', '*')) do
          local t = redis.call('TYPE', k)['ok']
          if t == 'string' then out[#out + 1] = redis.call('GET', k)
          elseif t == 'hash' then for _, v in ipairs(redis.call('HVALS', k)) do out[#out + 1] = v end end
        end
        return out
        """;

    private static async Task<(string Pipeline, string Type)> PipelineAsync(HttpClient http, bool requireTimestamp = false, string prefix = "")
    {
        var type = await HardeningFixture.DefinitionAsync(http, prefix);
        var pipeline = EngineFixture.Unique("hooked");
        await HardeningFixture.SendAsync(http, HttpMethod.Post, $"{prefix}/pipelines", new
        {
            name = pipeline, resource = type,
            steps = new[] { new { id = "1", driver = EngineFixture.Unique("nobody") } },
            webhooks = new[] { new { name = "push", secret = Secret, requireTimestamp, resource = new Dictionary<string, string> { ["name"] = "/repository/name" } } },
        });
        return (pipeline, type);
    }

    private static string Hmac(string signed) => "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(Secret), Encoding.UTF8.GetBytes(signed)));

    private static async Task<(HttpStatusCode Status, JsonElement Body)> DeliverAsync(
        HttpClient http, string path, string body, string? github = null, (long At, string Signature)? stamped = null, string? delivery = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        if (github is not null)
        {
            request.Headers.Add("X-Hub-Signature-256", github);
        }

        if (stamped is { } s)
        {
            request.Headers.Add("X-Conveyor-Timestamp", s.At.ToString(CultureInfo.InvariantCulture));
            request.Headers.Add("X-Conveyor-Signature-256", s.Signature);
        }

        if (delivery is not null)
        {
            request.Headers.Add("X-GitHub-Delivery", delivery);
        }

        using var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone());
    }

    private static (long, string) Stamp(string body, DateTimeOffset at)
    {
        var seconds = at.ToUnixTimeSeconds();
        return (seconds, Hmac($"{seconds}.{body}"));
    }

    [Fact]
    public async Task The_key_is_stored_encrypted_and_never_in_the_pipeline_or_a_run_plan()
    {
        var (pipeline, _) = await PipelineAsync(fx.Open.Http);
        var body = """{"repository":{"name":"web"}}""";
        var (status, created) = await DeliverAsync(fx.Open.Http, $"/hooks/default/{pipeline}/push", body, Hmac(body));
        Assert.Equal(HttpStatusCode.Accepted, status);

        var run = await fx.Open.Services.GetRequiredService<IGrainFactory>().GetGrain<IPipelineRunGrain>(created.GetProperty("runid").GetGuid()).GetAsync();
        Assert.Equal("", Assert.Single(run!.Plan.Pipeline.Webhooks).Secret);

        await using var redis = await ConnectionMultiplexer.ConnectAsync(fx.Redis.ConnectionString);
        var values = (RedisResult[])(await redis.GetDatabase().ScriptEvaluateAsync(ScanScript))!;
        Assert.NotEmpty(values);
        var needle = Encoding.UTF8.GetBytes(Secret);
        Assert.DoesNotContain(values, v => ((byte[])v!).AsSpan().IndexOf(needle) >= 0);
    }

    [Fact]
    public async Task A_key_under_32_characters_is_refused()
    {
        var type = await HardeningFixture.DefinitionAsync(fx.Open.Http);
        var pipeline = EngineFixture.Unique("short");
        using var response = await fx.Open.Http.PutAsync($"/pipelines/{pipeline}", JsonContent(new
        {
            name = pipeline, resource = type, steps = new[] { new { id = "1", driver = "d" } },
            webhooks = new[] { new { name = "push", secret = "change-me-please", resource = new Dictionary<string, string> { ["name"] = "/n" } } },
        }));
        await ProblemAssert.NamesFieldAsync(response, "webhooks[0].secret");
        using var absent = await fx.Open.Http.GetAsync($"/pipelines/{pipeline}");
        Assert.Equal(HttpStatusCode.NotFound, absent.StatusCode);
    }

    [Fact]
    public async Task A_replayed_body_starts_no_second_run_whatever_delivery_id_it_carries()
    {
        var (pipeline, _) = await PipelineAsync(fx.Open.Http);
        var path = $"/hooks/default/{pipeline}/push";
        var body = """{"repository":{"name":"web"},"after":"abc"}""";
        var (status, first) = await DeliverAsync(fx.Open.Http, path, body, Hmac(body), delivery: "d-1");
        Assert.Equal(HttpStatusCode.Accepted, status);
        var runId = first.GetProperty("runid").GetString();

        foreach (var delivery in new[] { "d-1", "d-forged", null })
        {
            var (again, replay) = await DeliverAsync(fx.Open.Http, path, body, Hmac(body), delivery: delivery);
            Assert.Equal(HttpStatusCode.OK, again);
            Assert.False(replay.GetProperty("created").GetBoolean());
            Assert.Equal(runId, replay.GetProperty("runid").GetString());
        }

        var other = """{"repository":{"name":"web"},"after":"def"}""";
        var (fresh, next) = await DeliverAsync(fx.Open.Http, path, other, Hmac(other));
        Assert.Equal(HttpStatusCode.Accepted, fresh);
        Assert.NotEqual(runId, next.GetProperty("runid").GetString());
        Assert.Equal(2, (await fx.Open.GetJsonAsync($"/pipelines/{pipeline}/runs")).GetProperty("items").GetArrayLength());
    }

    [Fact]
    public async Task Timestamped_signatures_are_accepted_within_the_tolerance_and_refused_outside_it()
    {
        var (pipeline, _) = await PipelineAsync(fx.Open.Http, requireTimestamp: true);
        var path = $"/hooks/default/{pipeline}/push";
        var body = """{"repository":{"name":"web"}}""";
        var now = DateTimeOffset.UtcNow;

        Assert.Equal(HttpStatusCode.Accepted, (await DeliverAsync(fx.Open.Http, path, body, stamped: Stamp(body, now))).Status);
        foreach (var (label, attempt) in new (string, (HttpStatusCode, JsonElement))[]
                 {
                     ("stale", await DeliverAsync(fx.Open.Http, path, body, stamped: Stamp(body, now.AddMinutes(-10)))),
                     ("from the future", await DeliverAsync(fx.Open.Http, path, body, stamped: Stamp(body, now.AddMinutes(10)))),
                     ("timestamp changed after signing", await DeliverAsync(fx.Open.Http, path, body, stamped: (now.ToUnixTimeSeconds() + 1, Stamp(body, now).Item2))),
                     ("GitHub-style, on a hook that requires timestamps", await DeliverAsync(fx.Open.Http, path, body, github: Hmac(body))),
                 })
        {
            Assert.True(attempt.Item1 == HttpStatusCode.Unauthorized, $"{label}: {(int)attempt.Item1} {attempt.Item2}");
        }

        Assert.Equal(1, (await fx.Open.GetJsonAsync($"/pipelines/{pipeline}/runs")).GetProperty("items").GetArrayLength());
    }

    [Fact]
    public async Task Each_hook_is_rate_limited()
    {
        using var admin = fx.LockedClient();
        var (pipeline, _) = await PipelineAsync(admin);
        using var anonymous = new HttpClient { BaseAddress = fx.Locked.Address };
        var path = $"/hooks/default/{pipeline}/push";
        var accepted = 0;
        HttpStatusCode last = default;
        var elapsed = Stopwatch.StartNew();
        for (var i = 0; i < 200 && last != HttpStatusCode.TooManyRequests; i++)
        {
            var body = $$"""{"repository":{"name":"web"},"n":{{i}}}""";
            (last, _) = await DeliverAsync(anonymous, path, body, Hmac(body));
            accepted += last == HttpStatusCode.Accepted ? 1 : 0;
        }

        Assert.Equal(HttpStatusCode.TooManyRequests, last);
        // A burst, plus what the bucket refilled (1 per second) while the loop ran.
        Assert.InRange(accepted, HardeningFixture.HookBurst, HardeningFixture.HookBurst + (int)Math.Ceiling(elapsed.Elapsed.TotalSeconds) + 1);
    }

    private static StringContent JsonContent(object body) => new(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");
}
