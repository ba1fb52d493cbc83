using System.Net;
using System.Text.Json;
using Conveyor.Testing;

namespace Conveyor.IntegrationTests;

/// <summary>
/// The run events feeds (<c>GET /runs/{id}/events</c>, <c>GET /runs/events</c>): every run and step transition of a
/// run, exactly once and in order, including across a reconnect with <c>Last-Event-ID</c>.
/// </summary>
[Collection(EngineCollection.Name)]
public sealed class RunEventsTests(EngineFixture fx)
{
    private static readonly string[] Expected =
    [
        "run:Pending>Running", "build:Pending>Dispatched", "build:Dispatched>Succeeded", "gate:Pending>WaitingForApproval",
        "gate:WaitingForApproval>Succeeded", "deploy:Pending>Dispatched", "deploy:Dispatched>Succeeded", "run:Running>Succeeded",
    ];

    private async Task<(string Pipeline, LanguageDrivers Drivers)> DefineAsync()
    {
        var type = EngineFixture.Unique("feed");
        await fx.CreateDefinitionAsync(type);
        var drivers = new LanguageDrivers(fx.Nats.Url, type);
        var (build, deploy) = (EngineFixture.Unique("build"), EngineFixture.Unique("deploy"));
        await drivers.StartAsync(build);
        await drivers.StartAsync(deploy);
        await fx.Host.PostJsonAsync("/pipelines", new
        {
            name = type,
            resource = type,
            steps = new object[] { new { id = "build", driver = build }, new { id = "gate", type = "approval" }, new { id = "deploy", driver = deploy } },
        });
        return (type, drivers);
    }

    private static string Transition(JsonElement e) =>
        $"{(e.TryGetProperty("step", out var step) ? step.GetString() : "run")}:{e.GetProperty("previous").GetString()}>{e.GetProperty("status").GetString()}";

    private static List<JsonElement> Data(IEnumerable<SseEvent> events) =>
        events.Where(e => e.Event is "run" or "step").Select(e => JsonDocument.Parse(e.Data).RootElement.Clone()).ToList();

    [Fact]
    public async Task A_client_sees_every_transition_of_a_run_exactly_once_across_a_reconnect()
    {
        var (pipeline, drivers) = await DefineAsync();
        await using var _ = drivers;
        var created = await fx.Host.PostJsonAsync("/resources", new { name = "web", resource = pipeline, pipeline, spec = new { image = "nginx" } });
        var runId = created.GetProperty("runid").GetString()!;

        // First connection: from the start until the gate waits, then the client goes away.
        var first = await SseClient.CollectAsync(
            fx.Host.Http, $"/runs/{runId}/events", events => events.Exists(e => e.Data.Contains("\"WaitingForApproval\"", StringComparison.Ordinal)), Deadlines.Event);
        Assert.All(first, e => Assert.NotNull(e.Id));

        // Transitions happen while nobody listens.
        await fx.Host.PostJsonAsync($"/runs/{runId}/steps/gate/approve", new { }, expectedStatus: 200);
        await fx.Host.WaitForRunAsync(runId, Deadlines.Event);

        // Second connection resumes after the last event seen, and the feed ends with the run.
        var second = await SseClient.CollectAsync(fx.Host.Http, $"/runs/{runId}/events", events => events.Exists(e => e.Event == "end"), Deadlines.Event, lastEventId: first[^1].Id);
        Assert.Equal("end", second[^1].Event);
        Assert.Equal("Succeeded", JsonDocument.Parse(second[^1].Data).RootElement.GetProperty("status").GetString());

        var all = Data(first).Concat(Data(second)).ToList();
        Assert.Equal(Expected, all.Select(Transition));
        Assert.Equal(Enumerable.Range(1, Expected.Length).Select(i => (long)i), all.Select(e => e.GetProperty("sequence").GetInt64()));
        Assert.All(all, e => Assert.Equal(runId, e.GetProperty("runId").GetString()));
        Assert.Equal("Succeeded", all[^1].GetProperty("runStatus").GetString());

        // A client that connects after the end gets the whole history once, then the end.
        var replay = await SseClient.CollectAsync(fx.Host.Http, $"/runs/{runId}/events", events => events.Exists(e => e.Event == "end"), Deadlines.Event);
        Assert.Equal(Expected, Data(replay).Select(Transition));
    }

    [Fact]
    public async Task The_namespace_feed_shows_a_pipelines_runs_and_filters_by_status()
    {
        var (pipeline, drivers) = await DefineAsync();
        await using var _ = drivers;
        var created = await fx.Host.PostJsonAsync("/resources", new { name = "web", resource = pipeline, pipeline, spec = new { image = "nginx" } });
        var runId = created.GetProperty("runid").GetString()!;
        await Eventually.TrueAsync(
            async () => (await fx.Host.GetJsonAsync($"/runs/{runId}")).GetProperty("steps")[1].GetProperty("status").GetString() == "WaitingForApproval",
            Deadlines.Event,
            "the gate should wait");
        await fx.Host.PostJsonAsync($"/runs/{runId}/steps/gate/approve", new { }, expectedStatus: 200);

        var events = await SseClient.CollectAsync(
            fx.Host.Http, $"/runs/events?pipeline={pipeline}", list => Data(list).Exists(d => Transition(d) == "run:Running>Succeeded"), Deadlines.Event);
        Assert.Equal(Expected, Data(events).Select(Transition));

        var succeeded = await SseClient.CollectAsync(fx.Host.Http, $"/runs/events?pipeline={pipeline}&status=Succeeded", list => list.Count > 0, Deadlines.Event);
        var only = Assert.Single(Data(succeeded));
        Assert.Equal("run:Running>Succeeded", Transition(only));

        // Resuming the namespace feed after its last event gives nothing old again: the next event is a new run's.
        var next = await fx.Host.PostJsonAsync("/resources", new { name = "api", resource = pipeline, pipeline, spec = new { image = "nginx" } });
        var resumed = await SseClient.CollectAsync(fx.Host.Http, $"/runs/events?pipeline={pipeline}", list => list.Count > 0, Deadlines.Event, lastEventId: events[^1].Id);
        Assert.Equal(next.GetProperty("runid").GetString(), Data(resumed)[0].GetProperty("runId").GetString());
        Assert.Equal(1, Data(resumed)[0].GetProperty("sequence").GetInt64());
    }

    [Fact]
    public async Task A_bad_event_id_or_status_is_refused_before_streaming()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/runs/events");
        request.Headers.Add("Last-Event-ID", "not-an-id");
        using var response = await fx.Host.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("Last-Event-ID", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        using var status = await fx.Host.Http.GetAsync("/runs/events?status=Sleeping");
        Assert.Equal(HttpStatusCode.BadRequest, status.StatusCode);

        using var missing = await fx.Host.Http.GetAsync($"/runs/{Guid.NewGuid()}/events");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }
}
