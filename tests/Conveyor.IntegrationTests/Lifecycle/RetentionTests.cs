using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Conveyor.Testing;

namespace Conveyor.IntegrationTests.Lifecycle;

/// <summary>Retention, the archive and deletion, against real servers: nothing of a deleted run is left behind.</summary>
[Collection(LifecycleCollection.Name)]
public sealed class RetentionTests(LifecycleFixture fx)
{
    private static object Pipeline(string name, string type, string driver, object? retention) => new
    {
        name,
        resource = type,
        retention,
        steps = new[] { new { id = "build", driver, timeout = "5m" } },
    };

    [Fact]
    public async Task Finished_runs_are_archived_then_deleted_with_their_index_entries_logs_and_keys_when_their_retention_ends()
    {
        var (type, driver) = (LifecycleFixture.Unique("ret"), LifecycleFixture.Unique("drv"));
        await fx.DefineAsync(type, Pipeline(type, type, driver, new { period = "2s" }));
        await using var raw = await RawDriver.StartAsync(fx.Nats.Url, driver, $"drivers.{driver}.resources.{type}");
        var runs = new List<string> { await fx.CreateResourceAsync(type, "web", type) };
        for (var i = 0; i < 4; i++)
        {
            runs.Add(await fx.TriggerAsync(type, "web"));
        }

        foreach (var runId in runs)
        {
            var run = await fx.Host.WaitForRunAsync(runId, Deadlines.Event);
            Assert.Equal("Succeeded", run.GetProperty("status").GetString());
            Assert.True(run.TryGetProperty("expiresAt", out var expires), "a finished run says when it expires");
            Assert.Equal(run.GetProperty("finishedAt").GetDateTimeOffset().AddSeconds(2), expires.GetDateTimeOffset());
            using var log = await fx.Host.Http.PostAsJsonAsync("/logs", new { runid = runId, driver, message = "built" });
            Assert.Equal(201, (int)log.StatusCode);
        }

        await Eventually.TrueAsync(async () => (await fx.LastMessageAsync("conveyor-logs", "conveyor.logs." + runs[^1])) is not null, Deadlines.Event, "the log line is stored");

        foreach (var runId in runs)
        {
            await Eventually.TrueAsync(async () => await fx.StatusOfAsync($"/runs/{runId}") == 404, Deadlines.Event, $"run {runId} is deleted once it expired");
            var archived = await fx.Host.GetJsonAsync($"/archive/runs/{runId}");
            Assert.True(archived.GetProperty("complete").GetBoolean());
            Assert.Equal("Succeeded", archived.GetProperty("run").GetProperty("status").GetString());
            Assert.Equal($"{driver} ok", archived.GetProperty("run").GetProperty("steps")[0].GetProperty("message").GetString());
            Assert.Null(await fx.LastMessageAsync("conveyor-logs", "conveyor.logs." + runId));
            Assert.Empty(await fx.RedisMentionsAsync(runId));
            Assert.Empty(await fx.RedisMentionsAsync(Guid.Parse(runId).ToString("N")));
        }

        var listed = await fx.Host.GetJsonAsync($"/pipelines/{type}/runs");
        Assert.Empty(listed.GetProperty("items").EnumerateArray());
        // Nothing of the pipeline's runs is left in any set (an emptied sorted set disappears).
        await foreach (var key in fx.RedisServer.KeysAsync(pattern: $"*:runs:p:{type}*"))
        {
            Assert.Fail($"key {key} is left after every run of the pipeline was deleted");
        }
    }

    [Fact]
    public async Task KeepLast_keeps_the_newest_finished_runs_and_deletes_the_older_ones_at_once()
    {
        var (type, driver) = (LifecycleFixture.Unique("keep"), LifecycleFixture.Unique("drv"));
        await fx.DefineAsync(type, Pipeline(type, type, driver, new { period = "0", keepLast = 2 }));
        await using var raw = await RawDriver.StartAsync(fx.Nats.Url, driver, $"drivers.{driver}.resources.{type}");
        var runs = new List<string> { await fx.CreateResourceAsync(type, "web", type) };
        await fx.Host.WaitForRunAsync(runs[0], Deadlines.Event);
        for (var i = 0; i < 3; i++)
        {
            runs.Add(await fx.TriggerAsync(type, "web"));
            await fx.Host.WaitForRunAsync(runs[^1], Deadlines.Event);
        }

        // Kept forever by period, so only the cap deletes: the two oldest.
        Assert.False((await fx.Host.GetJsonAsync($"/runs/{runs[^1]}")).TryGetProperty("expiresAt", out _));
        foreach (var old in runs[..2])
        {
            await Eventually.TrueAsync(async () => await fx.StatusOfAsync($"/runs/{old}") == 404, Deadlines.Event, $"run {old} beyond keepLast is deleted");
            Assert.Equal(200, await fx.StatusOfAsync($"/archive/runs/{old}"));
        }

        foreach (var kept in runs[2..])
        {
            Assert.Equal(200, await fx.StatusOfAsync($"/runs/{kept}"));
        }
    }

    [Fact]
    public async Task Delete_refuses_a_running_run_and_deletes_a_finished_one_at_once()
    {
        var (type, driver) = (LifecycleFixture.Unique("del"), LifecycleFixture.Unique("drv"));
        await fx.DefineAsync(type, Pipeline(type, type, driver, retention: null));
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var raw = await RawDriver.StartAsync(fx.Nats.Url, driver, $"drivers.{driver}.resources.{type}", async _ =>
        {
            await release.Task;
            return (true, "done", (JsonNode?)null);
        });
        var runId = await fx.CreateResourceAsync(type, "web", type);
        await Eventually.TrueAsync(() => !raw.Received.IsEmpty, Deadlines.Event, "the driver has the step");

        using (var running = await fx.Host.Http.DeleteAsync($"/runs/{runId}"))
        {
            Assert.Equal(409, (int)running.StatusCode);
            var problem = await running.Content.ReadFromJsonAsync<JsonElement>();
            Assert.Equal("urn:conveyor:problem:conflict", problem.GetProperty("type").GetString());
            Assert.Contains("only a finished run can be deleted", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        }

        release.SetResult();
        await fx.Host.WaitForRunAsync(runId, Deadlines.Event);
        using (var deleted = await fx.Host.Http.DeleteAsync($"/runs/{runId}"))
        {
            Assert.Equal(204, (int)deleted.StatusCode);
        }

        Assert.Equal(404, await fx.StatusOfAsync($"/runs/{runId}"));
        Assert.Equal(200, await fx.StatusOfAsync($"/archive/runs/{runId}"));
        Assert.Empty(await fx.RedisMentionsAsync(Guid.Parse(runId).ToString("N")));
        using var again = await fx.Host.Http.DeleteAsync($"/runs/{runId}");
        Assert.Equal(404, (int)again.StatusCode);
        // Another namespace never sees (or deletes) it.
        using var foreign = await fx.Host.Http.GetAsync($"/namespaces/other/archive/runs/{runId}");
        Assert.Equal(404, (int)foreign.StatusCode);
    }

    [Fact]
    public async Task Deleting_a_pipeline_deletes_its_finished_runs()
    {
        var (type, driver) = (LifecycleFixture.Unique("pdel"), LifecycleFixture.Unique("drv"));
        await fx.DefineAsync(type, Pipeline(type, type, driver, retention: null));
        await using var raw = await RawDriver.StartAsync(fx.Nats.Url, driver, $"drivers.{driver}.resources.{type}");
        var runId = await fx.CreateResourceAsync(type, "web", type);
        await fx.Host.WaitForRunAsync(runId, Deadlines.Event);

        using var deleted = await fx.Host.Http.DeleteAsync($"/pipelines/{type}");
        Assert.True(deleted.IsSuccessStatusCode);
        await Eventually.TrueAsync(async () => await fx.StatusOfAsync($"/runs/{runId}") == 404, Deadlines.Event, "the deleted pipeline's run is deleted");
        Assert.Equal(200, await fx.StatusOfAsync($"/archive/runs/{runId}"));
    }

    [Fact]
    public async Task A_resource_keeps_its_newest_versions_and_a_re_created_one_shows_none_of_the_old()
    {
        var type = LifecycleFixture.Unique("ver");
        await fx.Host.PostJsonAsync("/resource-definitions", new { name = type, version = "1", schema = new { type = "object" } });
        await fx.Host.PostJsonAsync("/resources", new { name = "web", resource = type, spec = new { n = 1 } });
        for (var n = 2; n <= 6; n++)
        {
            using var put = await fx.Host.Http.PutAsJsonAsync($"/resources/{type}/web", new { name = "web", spec = new { n } });
            Assert.True(put.IsSuccessStatusCode, await put.Content.ReadAsStringAsync());
        }

        // KeepResourceVersions = 3: versions 4, 5 and 6 are kept.
        Assert.Equal(404, await fx.StatusOfAsync($"/resources/{type}/web/3"));
        Assert.Equal(4, (await fx.Host.GetJsonAsync($"/resources/{type}/web/4")).GetProperty("spec").GetProperty("n").GetInt32());
        Assert.Equal(6, (await fx.Host.GetJsonAsync($"/resources/{type}/web/6")).GetProperty("spec").GetProperty("n").GetInt32());
        Assert.Empty((await fx.RedisMentionsAsync($"{type}/web/3")).Concat(await fx.RedisMentionsAsync($"{type}/web/1")));

        using var deleted = await fx.Host.Http.DeleteAsync($"/resources/{type}/web");
        Assert.True(deleted.IsSuccessStatusCode);
        Assert.Empty(await fx.RedisMentionsAsync($"{type}/web"));

        await fx.Host.PostJsonAsync("/resources", new { name = "web", resource = type, spec = new { n = 100 } });
        Assert.Equal(100, (await fx.Host.GetJsonAsync($"/resources/{type}/web/1")).GetProperty("spec").GetProperty("n").GetInt32());
        Assert.Equal(404, await fx.StatusOfAsync($"/resources/{type}/web/4"));
    }
}
