using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Conveyor.Contracts;
using Conveyor.Testing;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Conveyor.IntegrationTests.Security;

/// <summary>Namespaces A and B side by side: what is A's never reaches B's readers, live or listed.</summary>
[Collection(SecurityCollection.Name)]
public sealed class IsolationTests(SecurityFixture fx)
{
    private static readonly TimeSpan Deadline = Deadlines.Event;

    [Fact]
    public async Task A_live_log_stream_carries_its_runs_entries_and_never_another_namespaces()
    {
        var (a, b) = (EngineFixture.Unique("a"), EngineFixture.Unique("b"));
        await fx.CreateNamespaceAsync(a);
        await fx.CreateNamespaceAsync(b);
        var runA = await StartWaitingRunAsync(a);
        var runB = await StartWaitingRunAsync(b);
        using var viewerA = fx.Client(await fx.CreateKeyAsync("viewer", a));
        using var viewerB = fx.Client(await fx.CreateKeyAsync("viewer", b));

        // Both streams open before anything is written, so everything below arrives live.
        using var stop = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var seenA = new ConcurrentQueue<string>();
        var seenB = new ConcurrentQueue<string>();
        var followA = Follow(viewerA, $"/namespaces/{a}/runs/{runA}/logs/stream", seenA, stop.Token);
        var followB = Follow(viewerB, $"/namespaces/{b}/runs/{runB}/logs/stream", seenB, stop.Token);

        await using var nats = new NatsConnection(NatsOpts.Default with { Url = fx.Nats.Url });
        var js = new NatsJSContext(nats);
        async Task Publish(string run, string message) =>
            (await js.PublishAsync(Subjects.Logs(run), JsonSerializer.SerializeToUtf8Bytes(new { runid = run, driver = "nobody", pipeline = "p", timestamp = "1714650000", message }))).EnsureSuccess();

        // The first entry of each proves its stream is live before the interleaved ones go out.
        await Publish(runA, "a-0");
        await Publish(runB, "b-0");
        await Eventually.TrueAsync(() => seenA.Contains("a-0") && seenB.Contains("b-0"), Deadline, "both streams should be live");
        for (var i = 1; i <= 10; i++)
        {
            await Publish(runB, $"b-{i}");
            if (i % 5 == 0)
            {
                await Publish(runA, $"a-{i / 5}");
            }
        }

        await Publish(runB, "b-last");
        await Publish(runA, "a-last");
        await Eventually.TrueAsync(() => seenA.Contains("a-last") && seenB.Contains("b-last"), Deadline, "both streams should see their last entry");
        await stop.CancelAsync();
        await Task.WhenAll(followA, followB);

        // A's stream has exactly A's entries in write order; B's were live at the same moment, on B's stream only.
        Assert.Equal(["a-0", "a-1", "a-2", "a-last"], seenA.ToArray());
        Assert.Equal(["b-0", .. Enumerable.Range(1, 10).Select(i => $"b-{i}"), "b-last"], seenB.ToArray());

        // And A's key cannot follow B's run, neither by B's namespace nor through its own.
        using var forbidden = await viewerA.GetAsync($"/namespaces/{b}/runs/{runB}/logs/stream", HttpCompletionOption.ResponseHeadersRead);
        await ProblemAssert.IsAsync(forbidden, HttpStatusCode.Forbidden, "forbidden");
        using var hidden = await viewerA.GetAsync($"/namespaces/{a}/runs/{runB}/logs/stream", HttpCompletionOption.ResponseHeadersRead);
        await ProblemAssert.IsAsync(hidden, HttpStatusCode.NotFound, "not-found");
    }

    [Fact]
    public async Task CDEvents_of_a_run_go_to_its_namespaces_subject_only()
    {
        var (a, b) = (EngineFixture.Unique("a"), EngineFixture.Unique("b"));
        await fx.CreateNamespaceAsync(a);
        await fx.CreateNamespaceAsync(b);
        await using var nats = new NatsConnection(NatsOpts.Default with { Url = fx.Nats.Url });
        var received = new ConcurrentQueue<(string Subject, JsonElement Event)>();
        using var stop = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var subscription = await nats.SubscribeCoreAsync<byte[]>(Subjects.CDEventsWildcard, cancellationToken: stop.Token);
        var reading = Task.Run(async () =>
        {
            await foreach (var msg in subscription.Msgs.ReadAllAsync(stop.Token))
            {
                received.Enqueue((msg.Subject, JsonDocument.Parse(msg.Data!).RootElement.Clone()));
            }
        });
        await nats.PingAsync();

        var runA = await StartWaitingRunAsync(a);
        var runB = await StartWaitingRunAsync(b);
        using var admin = fx.Client(fx.AdminKey);
        foreach (var (ns, run) in new[] { (a, runA), (b, runB) })
        {
            using var cancelled = await admin.PostAsync($"/namespaces/{ns}/runs/{run}/cancel", null);
            Assert.Equal(HttpStatusCode.OK, cancelled.StatusCode);
        }

        static string RunOf(JsonElement e) => e.GetProperty("data").GetProperty("customData").GetProperty("runId").GetString()!;
        await Eventually.TrueAsync(
            () => new[] { runA, runB }.All(run => received.Any(r => RunOf(r.Event) == run && r.Event.GetProperty("type").GetString() == Grains.Events.CDEvents.PipelineRunFinished)),
            Deadline,
            "both runs' finished events should arrive");
        await subscription.UnsubscribeAsync();
        await stop.CancelAsync();
        await reading.ContinueWith(_ => { }, TaskScheduler.Default);

        foreach (var (ns, run) in new[] { (a, runA), (b, runB) })
        {
            var events = received.Where(r => RunOf(r.Event) == run).ToList();
            Assert.True(events.Count >= 3, $"{run}: {events.Count} events");
            Assert.All(events, e =>
            {
                Assert.Equal(Subjects.CDEvents(ns), e.Subject);
                Assert.Equal(ns, e.Event.GetProperty("data").GetProperty("customData").GetProperty("namespace").GetString());
                Assert.StartsWith($"{ns}/{run}", SubjectId(e.Event), StringComparison.Ordinal);
            });
        }

        // Durably too: a consumer of A's subject in the events stream reads A's run only.
        var js = new NatsJSContext(nats);
        // One filter subject, not FilterSubjects: nats-server 2.9 ignores the multi-filter field and would deliver all.
        var consumer = await js.CreateOrUpdateConsumerAsync(Subjects.EventsStream, new NATS.Client.JetStream.Models.ConsumerConfig("isolation-" + Guid.NewGuid().ToString("N"))
        {
            FilterSubject = Subjects.CDEvents(a),
            AckPolicy = NATS.Client.JetStream.Models.ConsumerConfigAckPolicy.None,
            InactiveThreshold = TimeSpan.FromSeconds(30),
        });
        var stored = new List<string>();
        await foreach (var msg in consumer.FetchNoWaitAsync<byte[]>(new NatsJSFetchOpts { MaxMsgs = 1000 }))
        {
            stored.Add(RunOf(JsonDocument.Parse(msg.Data!).RootElement));
        }

        Assert.Contains(runA, stored);
        Assert.DoesNotContain(runB, stored);
    }

    [Fact]
    public async Task Secrets_are_listed_and_referenced_in_their_own_namespace_only()
    {
        var (a, b) = (EngineFixture.Unique("a"), EngineFixture.Unique("b"));
        await fx.CreateNamespaceAsync(a);
        await fx.CreateNamespaceAsync(b);
        using var admin = fx.Client(fx.AdminKey);
        foreach (var (ns, name) in new[] { (a, "A_ONLY"), (b, "B_ONLY") })
        {
            using var put = await admin.PutAsJsonAsync($"/namespaces/{ns}/secrets/{name}", new { value = $"value of {name}" });
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        }

        using var viewerA = fx.Client(await fx.CreateKeyAsync("viewer", a));
        var listA = await viewerA.GetFromJsonAsync<JsonElement>($"/namespaces/{a}/secrets");
        Assert.Equal(["A_ONLY"], listA.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("name").GetString()));
        using (var theirs = await viewerA.GetAsync($"/namespaces/{a}/secrets/B_ONLY"))
        {
            await ProblemAssert.SaysAsync(theirs, HttpStatusCode.NotFound, "not-found", "secret B_ONLY not found");
        }

        using (var listB = await viewerA.GetAsync($"/namespaces/{b}/secrets"))
        {
            await ProblemAssert.IsAsync(listB, HttpStatusCode.Forbidden, "forbidden");
        }

        // The admin sees each namespace's own; the default namespace has neither.
        var adminB = await admin.GetStringAsync($"/namespaces/{b}/secrets");
        Assert.Contains("B_ONLY", adminB);
        Assert.DoesNotContain("A_ONLY", adminB);
        var root = await admin.GetStringAsync("/secrets");
        Assert.DoesNotContain("A_ONLY", root);
        Assert.DoesNotContain("B_ONLY", root);

        // A step in A cannot name B's secret: it does not exist there.
        await fx.AdminPostAsync($"/namespaces/{a}/resource-definitions", new { name = "app", version = "1", schema = new { type = "object" } });
        using var pipeline = await admin.PostAsJsonAsync($"/namespaces/{a}/pipelines", new
        {
            name = "steal", resource = "app", steps = new[] { new { id = "1", driver = "nobody", secrets = new[] { "B_ONLY" } } },
        });
        await ProblemAssert.NamesFieldAsync(pipeline, "steps[0].secrets");
    }

    private static string SubjectId(JsonElement cloudEvent) => cloudEvent.GetProperty("data").GetProperty("subject").GetProperty("id").GetString() ?? "";

    private static Task Follow(HttpClient client, string path, ConcurrentQueue<string> seen, CancellationToken cancellationToken) => Task.Run(async () =>
    {
        try
        {
            await foreach (var e in SseClient.ReadAsync(client, path, cancellationToken: cancellationToken))
            {
                if (e.Event == "log")
                {
                    seen.Enqueue(JsonDocument.Parse(e.Data).RootElement.GetProperty("message").GetString()!);
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The test is done with the stream.
        }
    }, CancellationToken.None);

    /// <summary>A definition, a pipeline whose driver nobody serves, and a resource: a run that waits for its driver.</summary>
    private async Task<string> StartWaitingRunAsync(string ns)
    {
        await fx.AdminPostAsync($"/namespaces/{ns}/resource-definitions", new { name = "app", version = "1", schema = new { type = "object" } });
        await fx.AdminPostAsync($"/namespaces/{ns}/pipelines", new { name = $"p-{ns}", resource = "app", steps = new[] { new { id = "1", driver = "nobody" } } });
        var created = await fx.AdminPostAsync($"/namespaces/{ns}/resources", new { name = "web", resource = "app", pipeline = $"p-{ns}", spec = new { } });
        return created.GetProperty("runid").GetString()!;
    }
}
