using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Conveyor.Testing;

namespace Conveyor.IntegrationTests;

/// <summary>Schedules through the HTTP API on one silo: time zones honoured and shown, bad schedules refused.</summary>
[Collection(EngineCollection.Name)]
public sealed class ScheduleApiTests(EngineFixture fx)
{
    private async Task<(string Type, RawDriver Driver)> SetupAsync()
    {
        var type = EngineFixture.Unique("sch");
        var driver = EngineFixture.Unique("drv");
        await fx.CreateDefinitionAsync(type);
        await fx.Host.PostJsonAsync("/pipelines", new { name = type, resource = type, steps = new[] { new { id = "build", driver } } });
        await fx.Host.PostJsonAsync("/resources", new { name = "web", resource = type, spec = new { image = "nginx" } });
        return (type, await RawDriver.StartAsync(fx.Nats.Url, driver, $"drivers.{driver}.resources.{type}"));
    }

    private async Task<HttpResponseMessage> PutAsync(string path, object body) =>
        await fx.Host.Http.PutAsync(path, new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json"));

    [Fact]
    public async Task A_schedule_fires_by_the_clock_of_its_time_zone_and_shows_the_zone()
    {
        var (type, driver) = await SetupAsync();
        await using var _ = driver;

        // Hours that are "now" in Kolkata (UTC+05:30, no daylight saving) are never "now" in UTC, so of two schedules
        // with the same hours only the one read in Kolkata can fire during the test.
        var kolkata = TimeZoneInfo.FindSystemTimeZoneById("Asia/Kolkata");
        var hour = TimeZoneInfo.ConvertTime(DateTimeOffset.UtcNow, kolkata).Hour;
        var cron = $"*/2 * {hour},{(hour + 1) % 24} * * *";
        using (var put = await PutAsync($"/pipelines/{type}", new
        {
            name = type,
            resource = type,
            steps = new[] { new { id = "build", driver = driver.Name } },
            schedules = new object[]
            {
                new { name = "local", cron, timeZone = "Asia/Kolkata", resource = "web" },
                new { name = "utc", cron, resource = "web" },
            },
        }))
        {
            Assert.True(put.StatusCode == HttpStatusCode.OK, await put.Content.ReadAsStringAsync());
        }

        var shown = (await fx.Host.GetJsonAsync($"/pipelines/{type}")).GetProperty("schedules");
        Assert.Equal("Asia/Kolkata", shown[0].GetProperty("timeZone").GetString());
        Assert.Equal(cron, shown[0].GetProperty("cron").GetString());
        Assert.Equal("fireOnce", shown[0].GetProperty("missedFire").GetString());
        Assert.Equal("UTC", shown[1].GetProperty("timeZone").GetString());

        JsonElement run = default;
        await Eventually.TrueAsync(
            async () =>
            {
                var items = (await fx.Host.GetJsonAsync($"/pipelines/{type}/runs")).GetProperty("items");
                if (items.GetArrayLength() == 0)
                {
                    return false;
                }

                run = await fx.Host.GetJsonAsync($"/runs/{items[0].GetProperty("id").GetString()}");
                return true;
            },
            Deadlines.Event,
            "the schedule read in Asia/Kolkata fires");
        using (var put = await PutAsync($"/pipelines/{type}", new { name = type, resource = type, steps = new[] { new { id = "build", driver = driver.Name } } }))
        {
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        }

        Assert.Equal("schedule:local", run.GetProperty("trigger").GetString());
        var occurrence = DateTimeOffset.Parse(run.GetProperty("triggerId").GetString()!, CultureInfo.InvariantCulture);
        Assert.EndsWith("Z", run.GetProperty("triggerId").GetString(), StringComparison.Ordinal);
        Assert.Contains(TimeZoneInfo.ConvertTime(occurrence, kolkata).Hour, new[] { hour, (hour + 1) % 24 });
        Assert.Equal(0, occurrence.Second % 2);
        var runs = (await fx.Host.GetJsonAsync($"/pipelines/{type}/runs?limit=100")).GetProperty("items").EnumerateArray()
            .Select(r => r.GetProperty("id").GetString()!).ToList();
        foreach (var id in runs)
        {
            Assert.Equal("schedule:local", (await fx.Host.GetJsonAsync($"/runs/{id}")).GetProperty("trigger").GetString());
        }
    }

    [Fact]
    public async Task A_bad_cron_an_unknown_time_zone_or_policy_is_a_400_problem_naming_the_field_and_changes_nothing()
    {
        var (type, driver) = await SetupAsync();
        await using var _ = driver;

        async Task<JsonElement> RejectedAsync(object schedule)
        {
            using var response = await PutAsync($"/pipelines/{type}", new
            {
                name = type,
                resource = type,
                steps = new[] { new { id = "build", driver = driver.Name } },
                schedules = new[] { new { name = "ok", cron = "0 2 * * *", resource = "web" }, schedule },
            });
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, text);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            var problem = JsonDocument.Parse(text).RootElement.Clone();
            Assert.Equal("urn:conveyor:problem:validation", problem.GetProperty("type").GetString());
            return problem.GetProperty("errors");
        }

        var cron = await RejectedAsync(new { name = "bad", cron = "61 * * * *", resource = "web" });
        Assert.Contains("'61 * * * *' is not a cron expression", cron.GetProperty("schedules[1].cron")[0].GetString(), StringComparison.Ordinal);
        Assert.False(cron.TryGetProperty("schedules[0].cron", out JsonElement none), none.ToString());

        var zone = await RejectedAsync(new { name = "bad", cron = "*/5 * * * *", timeZone = "Mars/Olympus_Mons", resource = "web" });
        Assert.Contains("unknown time zone 'Mars/Olympus_Mons'", zone.GetProperty("schedules[1].timeZone")[0].GetString(), StringComparison.Ordinal);

        var policy = await RejectedAsync(new { name = "bad", cron = "*/5 * * * *", resource = "web", missedFire = "sometimes" });
        Assert.Contains("'fireOnce' or 'skip'", policy.GetProperty("schedules[1].missedFire")[0].GetString(), StringComparison.Ordinal);

        // The stored pipeline is the one from before the rejected writes: no schedules.
        var stored = JsonNode.Parse((await fx.Host.GetJsonAsync($"/pipelines/{type}")).GetRawText())!;
        Assert.Null(stored["schedules"]);
    }
}
