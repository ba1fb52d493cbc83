using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Conveyor.Driver.Sdk;
using Conveyor.Client;
using Conveyor.Grains.Logs;
using Conveyor.Testing;
using Microsoft.Extensions.DependencyInjection;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Conveyor.IntegrationTests;

[Collection(EngineCollection.Name)]
public sealed class LogTests(EngineFixture fx) : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = Deadlines.Event;
    private NatsConnection _nats = null!;
    private NatsJSContext _js = null!;

    public async Task InitializeAsync()
    {
        _nats = new NatsConnection(NatsOpts.Default with { Url = fx.Nats.Url, Name = "log-tests" });
        await _nats.ConnectAsync();
        _js = new NatsJSContext(_nats);
    }

    public async Task DisposeAsync() => await _nats.DisposeAsync();

    /// <summary>Publishes raw bytes on <c>logs.{runid}</c>, the way a driver does.</summary>
    private async Task PublishRawAsync(string runId, string json)
    {
        var ack = await _js.PublishAsync($"logs.{runId}", Encoding.UTF8.GetBytes(json));
        ack.EnsureSuccess();
    }

    private Task PublishAsync(string runId, string driver, string message, string? step = null) =>
        PublishRawAsync(runId, JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["runid"] = runId,
            ["driver"] = driver,
            ["pipeline"] = "",
            ["timestamp"] = "1714650000",
            ["message"] = message,
            ["labels"] = step is null ? null : new Dictionary<string, string> { ["step"] = step },
        }));

    private async Task<JsonElement> WaitForCountAsync(string runId, int count, string query = "")
    {
        JsonElement page = default;
        await Eventually.TrueAsync(
            async () =>
            {
                using var response = await fx.Host.Http.GetAsync($"/runs/{runId}/logs?limit=1000{query}");
                if (response.StatusCode == HttpStatusCode.NotFound)
                {
                    return false;
                }

                page = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
                return page.GetProperty("items").GetArrayLength() >= count;
            },
            Timeout,
            $"{count} log entries of run {runId} should be stored");
        return page;
    }

    private static List<JsonElement> Items(JsonElement page) => [.. page.GetProperty("items").EnumerateArray()];

    [Fact]
    public async Task Entries_come_back_in_order_in_pages_linked_by_cursor()
    {
        var runId = Guid.NewGuid().ToString();
        for (var i = 0; i < 250; i++)
        {
            await PublishAsync(runId, "builder", $"line {i:000}");
        }

        await WaitForCountAsync(runId, 250);
        var messages = new List<string>();
        var seqs = new List<ulong>();
        string? cursor = null;
        var pages = 0;
        do
        {
            var page = await fx.Host.GetJsonAsync($"/runs/{runId}/logs?limit=100" + (cursor is null ? "" : "&after=" + cursor));
            pages++;
            foreach (var item in Items(page))
            {
                messages.Add(item.GetProperty("message").GetString()!);
                seqs.Add(item.GetProperty("seq").GetUInt64());
                Assert.Equal(runId, item.GetProperty("runid").GetString());
                Assert.False(item.TryGetProperty("labels", out _));
            }

            cursor = page.GetProperty("nextCursor").GetString();
        }
        while (cursor is not null);

        Assert.Equal(3, pages);
        Assert.Equal(Enumerable.Range(0, 250).Select(i => $"line {i:000}"), messages);
        Assert.Equal(seqs.Order(), seqs);
        Assert.Equal(250, seqs.Distinct().Count());

        // The same entries as text, by query and by Accept header.
        var text = await fx.Host.Http.GetStringAsync($"/runs/{runId}/logs?format=text&limit=2");
        Assert.Equal("1714650000 [builder] line 000\n1714650000 [builder] line 001\n", text);
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/runs/{runId}/logs?limit=1&after={seqs[248]}");
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/plain"));
        using var response = await fx.Host.Http.SendAsync(request);
        Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("1714650000 [builder] line 249\n", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Entries_filter_by_driver_and_by_step()
    {
        var runId = Guid.NewGuid().ToString();
        // Order is kept per driver and step only (other lines are stored concurrently): each line is in before the next.
        var lines = new (string Driver, string Message, string? Step)[] { ("a", "a1", "compile"), ("b", "b1", "compile"), ("a", "a2", "test"), ("b", "b2", null) };
        for (var i = 0; i < lines.Length; i++)
        {
            await PublishAsync(runId, lines[i].Driver, lines[i].Message, lines[i].Step);
            await WaitForCountAsync(runId, i + 1);
        }

        static List<string> Messages(JsonElement page) => [.. Items(page).Select(i => i.GetProperty("message").GetString()!)];
        Assert.Equal(["a1", "a2"], Messages(await fx.Host.GetJsonAsync($"/runs/{runId}/logs?driver=a")));
        Assert.Equal(["a1", "b1"], Messages(await fx.Host.GetJsonAsync($"/runs/{runId}/logs?step=compile")));
        Assert.Equal(["b1"], Messages(await fx.Host.GetJsonAsync($"/runs/{runId}/logs?step=compile&driver=b")));
        var page = await fx.Host.GetJsonAsync($"/runs/{runId}/logs?driver=a&limit=1");
        Assert.Equal(["a1"], Messages(page));
        Assert.Equal(["a2"], Messages(await fx.Host.GetJsonAsync($"/runs/{runId}/logs?driver=a&after={page.GetProperty("nextCursor").GetString()}")));
        Assert.Equal("test", Items(await fx.Host.GetJsonAsync($"/runs/{runId}/logs?step=test")).Single().GetProperty("labels").GetProperty("step").GetString());
        Assert.Equal("[b/compile] b1\n", (await fx.Host.Http.GetStringAsync($"/runs/{runId}/logs?format=text&driver=b&step=compile"))[11..]);
    }

    [Fact]
    public async Task Python_and_rust_style_entries_and_an_entry_without_run_id_are_captured()
    {
        var runId = Guid.NewGuid().ToString();
        // Three drivers' lines are stored concurrently (order is kept per driver and step): each is in before the next.
        await PublishRawAsync(runId, $$"""{"run_id":"{{runId}}","driver":"py","timestamp":"2026-05-02T10:00:00+00:00","message":"from python","level":"info"}""");
        await WaitForCountAsync(runId, 1);
        await PublishRawAsync(runId, $$"""{"run_id":"{{runId}}","driver":"rs","pipeline":null,"timestamp":"2026-05-02T10:00:01Z","message":"from rust"}""");
        await WaitForCountAsync(runId, 2);
        await PublishRawAsync(runId, """{"driver":"raw","message":"run id from the subject"}""");
        var items = Items(await WaitForCountAsync(runId, 3));
        Assert.Equal(["py", "rs", "raw"], items.Select(i => i.GetProperty("driver").GetString()));
        Assert.All(items, i => Assert.Equal(runId, i.GetProperty("runid").GetString()));
        Assert.Equal("from python", items[0].GetProperty("message").GetString());
        Assert.Equal("", items[1].GetProperty("pipeline").GetString());
    }

    [Fact]
    public async Task Malformed_entry_is_dropped_and_counted_and_later_entries_are_still_stored()
    {
        var ingestor = fx.Host.Services.GetRequiredService<LogIngestor>();
        var before = ingestor.MalformedCount;
        var runId = Guid.NewGuid().ToString();
        await PublishRawAsync(runId, "{not json");
        await PublishRawAsync(runId, "[1,2]");
        await PublishAsync(runId, "d", "after the garbage");
        var items = Items(await WaitForCountAsync(runId, 1));
        Assert.Equal("after the garbage", Assert.Single(items).GetProperty("message").GetString());
        Assert.True(ingestor.MalformedCount >= before + 2);
    }

    [Fact]
    public async Task Oversize_message_is_truncated_with_a_marker()
    {
        var runId = Guid.NewGuid().ToString();
        await PublishAsync(runId, "d", new string('x', 100 * 1024));
        var message = Items(await WaitForCountAsync(runId, 1))[0].GetProperty("message").GetString()!;
        Assert.Equal(new string('x', 64 * 1024) + "… [truncated 36864 bytes]", message);
    }

    [Fact]
    public async Task Labels_are_capped_in_number_and_size()
    {
        var runId = Guid.NewGuid().ToString();
        var labels = Enumerable.Range(0, 70).ToDictionary(i => $"k{i:00}", i => i == 0 ? new string('v', 5000) : "v");
        await PublishRawAsync(runId, JsonSerializer.Serialize(new { runid = runId, driver = "d", message = "m", labels }));
        var stored = Items(await WaitForCountAsync(runId, 1))[0].GetProperty("labels");
        Assert.Equal(64, stored.EnumerateObject().Count());
        Assert.Equal(new string('v', 1024) + "… [truncated 3976 bytes]", stored.GetProperty("k00").GetString());
    }

    [Fact]
    public async Task Follow_sends_history_then_live_entries_each_once_in_order_and_resumes_after_last_event_id()
    {
        var runId = Guid.NewGuid().ToString();
        for (var i = 0; i < 50; i++)
        {
            await PublishAsync(runId, "d", $"m{i}");
        }

        await WaitForCountAsync(runId, 50);

        // Writes keep coming while the follower connects and catches up: the seam must have no gap and no duplicate.
        var writer = Task.Run(async () =>
        {
            for (var i = 50; i < 150; i++)
            {
                await PublishAsync(runId, "d", $"m{i}");
            }
        });
        var events = await SseClient.CollectAsync(fx.Host.Http, $"/runs/{runId}/logs/stream", e => e.Count >= 150, Timeout);
        await writer;
        Assert.All(events, e => Assert.Equal("log", e.Event));
        var seqs = events.Select(e => ulong.Parse(e.Id!, System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(seqs.Order(), seqs);
        Assert.Equal(150, seqs.Distinct().Count());
        var data = events.Select(e => JsonDocument.Parse(e.Data).RootElement).ToList();
        Assert.Equal(Enumerable.Range(0, 150).Select(i => $"m{i}"), data.Select(d => d.GetProperty("message").GetString()));
        Assert.Equal(seqs, data.Select(d => d.GetProperty("seq").GetUInt64()));

        // Resuming after the 100th entry delivers exactly the last 50.
        var resumed = await SseClient.CollectAsync(fx.Host.Http, $"/runs/{runId}/logs/stream", e => e.Count >= 50, Timeout, lastEventId: events[99].Id);
        Assert.Equal(events.Skip(100).Select(e => e.Id), resumed.Select(e => e.Id));
        var fromQuery = await SseClient.CollectAsync(fx.Host.Http, $"/runs/{runId}/logs/stream?after={events[148].Id}", e => e.Count >= 1, Timeout);
        Assert.Equal(events[149].Id, Assert.Single(fromQuery).Id);
    }

    [Fact]
    public async Task Follow_ends_with_an_end_event_when_the_run_finishes()
    {
        var type = EngineFixture.Unique("logapp");
        var driver = EngineFixture.Unique("logger");
        await fx.CreateDefinitionAsync(type);
        await fx.Host.PostJsonAsync("/pipelines", new { name = type, resource = type, steps = new[] { new { id = "build", name = "build", driver } } });
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var raw = await RawDriver.StartAsync(fx.Nats.Url, driver, $"drivers.{driver}.resources.{type}", async _ =>
        {
            await release.Task;
            return ((bool, string, JsonNode?)?)(true, "done", null);
        });
        var runId = (await fx.Host.PostJsonAsync("/resources", new { name = "web", resource = type, pipeline = type, spec = new { image = "nginx" } })).GetProperty("runid").GetString()!;
        await PublishAsync(runId, driver, "before follow");

        var follow = SseClient.CollectAsync(fx.Host.Http, $"/runs/{runId}/logs/stream", e => e[^1].Event == "end", Timeout);
        await WaitForCountAsync(runId, 1);
        await PublishAsync(runId, driver, "while followed");
        await WaitForCountAsync(runId, 2);
        release.SetResult();
        var events = await follow;

        Assert.Equal(["log", "log", "end"], events.Select(e => e.Event));
        Assert.Equal("""{"status":"Succeeded"}""", events[^1].Data);
        Assert.Equal("while followed", JsonDocument.Parse(events[1].Data).RootElement.GetProperty("message").GetString());

        // The run belongs to the default namespace: another namespace does not see it or its log.
        using var elsewhere = await fx.Host.Http.GetAsync($"/namespaces/other/runs/{runId}/logs");
        Assert.Equal(HttpStatusCode.NotFound, elsewhere.StatusCode);
    }

    [Fact]
    public async Task Unknown_run_is_404_for_reads_and_streams()
    {
        foreach (var path in new[] { $"/runs/{Guid.NewGuid()}/logs", $"/runs/{Guid.NewGuid()}/logs/stream", "/runs/no-such-run/logs" })
        {
            using var response = await fx.Host.Http.GetAsync(path, HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        }

        using var badLimit = await fx.Host.Http.GetAsync($"/runs/{Guid.NewGuid()}/logs?limit=1001");
        Assert.Equal(HttpStatusCode.BadRequest, badLimit.StatusCode);
        var openApi = await fx.Host.Http.GetStringAsync("/openapi/conveyor.json");
        Assert.Contains("\"/runs/{id}/logs/stream\"", openApi, StringComparison.Ordinal);
        Assert.Contains("text/event-stream", openApi, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Entries_of_an_sdk_driver_stay_readable_after_the_driver_is_gone()
    {
        var client = new ConveyorClient(fx.Host.Http);
        var type = EngineFixture.Unique("sdklog");
        var driver = EngineFixture.Unique("writer");
        await fx.CreateDefinitionAsync(type);
        await fx.Host.PostJsonAsync("/pipelines", new { name = type, resource = type, steps = new[] { new { id = "compile", name = "compile", driver } } });
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        string runId;
        await using (var manager = new DriverManager(
                         new LoggingDriver(driver, type),
                         new DriverOptions { Name = driver, Resources = [type], NatsUrl = fx.Nats.Url, ShutdownGracePeriod = TimeSpan.FromSeconds(2) }))
        {
            var running = manager.RunAsync(cts.Token);
            await manager.WaitUntilReadyAsync(cts.Token);
            runId = (await fx.Host.PostJsonAsync("/resources", new { name = "web", resource = type, pipeline = type, spec = new { image = "nginx" } })).GetProperty("runid").GetString()!;
            await fx.Host.WaitForRunAsync(runId, Timeout);
            await cts.CancelAsync();
            await running;
        }

        await WaitForCountAsync(runId, 2);
        var page = await client.GetRunLogsAsync(runId, step: "compile");
        Assert.Equal(["compiling", "compiled"], page.Items.Select(l => l.Message));
        Assert.All(page.Items, l => Assert.Equal(driver, l.Driver));
        Assert.Equal("1", page.Items[0].Labels!["attempt"]);
        Assert.Null(page.NextCursor);
        Assert.Single((await client.GetRunLogsAsync(runId, limit: 1)).Items);

        // Following a finished run replays its log and ends.
        var followed = new List<LogLine>();
        await foreach (var line in client.FollowRunLogsAsync(runId, cancellationToken: new CancellationTokenSource(Timeout).Token))
        {
            followed.Add(line);
        }

        Assert.Equal(["compiling", "compiled"], followed.Select(l => l.Message));
        var resumed = new List<LogLine>();
        await foreach (var line in client.FollowRunLogsAsync(runId, after: followed[0].Seq, cancellationToken: new CancellationTokenSource(Timeout).Token))
        {
            resumed.Add(line);
        }

        Assert.Equal(["compiled"], resumed.Select(l => l.Message));
        await Assert.ThrowsAnyAsync<ConveyorApiException>(() => client.GetRunLogsAsync(Guid.NewGuid().ToString()));
    }

    [Fact]
    public async Task Entries_survive_a_silo_restart()
    {
        var serviceId = EngineFixture.Unique("logs-restart");
        // Not a UUID: POST /logs refuses UUIDs that name no run (they could be a future run's id).
        var runId = EngineFixture.Unique("restart-log");
        await using (var first = await ConveyorTestHost.StartAsync(fx.Nats.Url, fx.Redis.ConnectionString, serviceId))
        {
            foreach (var message in new[] { "one", "two", "three" })
            {
                using var response = await first.Http.PostAsJsonAsync("/logs", new { runid = runId, driver = "d", pipeline = "p", timestamp = "1", message });
                Assert.Equal(HttpStatusCode.Created, response.StatusCode);
            }

            await Eventually.TrueAsync(
                async () => (await first.Http.GetAsync($"/runs/{runId}/logs")).IsSuccessStatusCode
                    && Items(await first.GetJsonAsync($"/runs/{runId}/logs")).Count == 3,
                Timeout,
                "three entries stored");
        }

        await using var second = await ConveyorTestHost.StartAsync(fx.Nats.Url, fx.Redis.ConnectionString, serviceId);
        Assert.Equal(["one", "two", "three"], Items(await second.GetJsonAsync($"/runs/{runId}/logs")).Select(i => i.GetProperty("message").GetString()));
    }

    [Fact]
    public async Task Original_routes_keep_the_original_shapes_and_sse_framing()
    {
        var runId = EngineFixture.Unique("abc123");
        using (var created = await fx.Host.Http.PostAsync("/logs", new StringContent(
                   $$"""{"runid":"{{runId}}","driver":"jenkins","pipeline":"build","timestamp":"2026-05-02T10:00:00Z","message":"Pipeline started"}""",
                   Encoding.UTF8,
                   "application/json")))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            Assert.Equal("text/plain", created.Content.Headers.ContentType?.MediaType);
            Assert.Equal("Created", await created.Content.ReadAsStringAsync());
        }

        const string First = """{"runid":"{{RUN}}","driver":"jenkins","pipeline":"build","timestamp":"2026-05-02T10:00:00Z","message":"Pipeline started"}""";
        var first = First.Replace("{{RUN}}", runId, StringComparison.Ordinal);
        // Until the entry is stored the run id is unknown (no run object, no entry): 404, not an empty list.
        await Eventually.TrueAsync(
            async () =>
            {
                using var listed = await fx.Host.Http.GetAsync($"/logs?runid={runId}");
                return listed.IsSuccessStatusCode && await listed.Content.ReadAsStringAsync() == $"[{first}]";
            },
            Timeout,
            "the entry is listed");
        Assert.Equal($"[{first}]", await fx.Host.Http.GetStringAsync($"/logs?runid={runId}&pipeline=build&driver=jenkins"));
        Assert.Equal("[]", await fx.Host.Http.GetStringAsync($"/logs?runid={runId}&pipeline=other"));
        using (var noRun = await fx.Host.Http.GetAsync("/logs?pipeline=build"))
        {
            Assert.Equal(HttpStatusCode.BadRequest, noRun.StatusCode);
            Assert.Contains("runid", await noRun.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        // Pipeline stream: history, then live entries, in the original framing (no id, no event name).
        var whole = SseClient.CollectAsync(fx.Host.Http, $"/logs/pipeline/{runId}", e => e.Count >= 3, Timeout);
        var driverOnly = SseClient.CollectAsync(fx.Host.Http, $"/logs/streams/jenkins/{runId}", e => e.Count >= 2, Timeout);
        using (var other = await fx.Host.Http.PostAsJsonAsync("/logs", new { runid = runId, driver = "other", pipeline = "build", timestamp = "t", message = "not jenkins" }))
        {
            Assert.Equal(HttpStatusCode.Created, other.StatusCode);
        }

        await PublishAsync(runId, "jenkins", "live");
        var events = await whole;
        Assert.Equal(first, events[0].Data);
        Assert.All(events, e => Assert.True(e.Id is null && e.Event is null));
        Assert.Equal(["Pipeline started", "not jenkins", "live"], events.Select(e => JsonDocument.Parse(e.Data).RootElement.GetProperty("message").GetString()));
        Assert.Equal(["Pipeline started", "live"], (await driverOnly).Select(e => JsonDocument.Parse(e.Data).RootElement.GetProperty("message").GetString()));
    }

    [Fact]
    public async Task The_original_list_returns_one_page_and_says_where_the_next_begins()
    {
        var runId = EngineFixture.Unique("paged");
        foreach (var message in new[] { "one", "two", "three" })
        {
            using var response = await fx.Host.Http.PostAsJsonAsync("/logs", new { runid = runId, driver = "d", pipeline = "p", timestamp = "1", message });
            Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        }

        await Eventually.TrueAsync(
            async () =>
            {
                using var listed = await fx.Host.Http.GetAsync($"/logs?runid={runId}");
                return listed.IsSuccessStatusCode && JsonDocument.Parse(await listed.Content.ReadAsStringAsync()).RootElement.GetArrayLength() == 3;
            },
            Timeout,
            "three entries stored");

        var messages = new List<string>();
        var path = $"/logs?runid={runId}&limit=2";
        var pages = 0;
        while (path is not null)
        {
            using var response = await fx.Host.Http.GetAsync(path);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            pages++;
            var items = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
            Assert.True(items.GetArrayLength() <= 2);
            messages.AddRange(items.EnumerateArray().Select(e => e.GetProperty("message").GetString()!));
            path = response.Headers.TryGetValues("Link", out var links) ? links.Single().Split('>')[0].TrimStart('<') : null;
            if (path is not null)
            {
                Assert.Contains("after=" + response.Headers.GetValues("Conveyor-Next-Cursor").Single(), path, StringComparison.Ordinal);
            }
        }

        Assert.Equal(["one", "two", "three"], messages);
        Assert.Equal(2, pages);
        foreach (var bad in new[] { "limit=0", "limit=1001", "after=x" })
        {
            using var response = await fx.Host.Http.GetAsync($"/logs?runid={runId}&{bad}");
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Contains(bad.Split('=')[0], await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
    }

    private sealed class LoggingDriver(string name, string resource) : IDriver
    {
        public string Name => name;

        public IReadOnlyCollection<string> Resources => [resource];

        public async Task<DriverResult> ReconcileAsync(DriverEvent driverEvent, DriverContext context, CancellationToken cancellationToken)
        {
            await context.Logger.LogAsync("compiling", cancellationToken: cancellationToken);
            await context.Logger.LogAsync("compiled", cancellationToken: cancellationToken);
            return DriverResult.Ok("ok");
        }
    }
}
