using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Events;
using Conveyor.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Conveyor.IntegrationTests;

/// <summary>
/// CDEvents of real runs, validated against the CDEvents 0.4.1 JSON Schemas and the CloudEvents envelope
/// (<see cref="CDEventValidator"/>), on core NATS, in the JetStream stream and at the HTTP sink.
/// </summary>
[Collection(OpsCollection.Name)]
public sealed class CDEventsTests(OpsFixture fx)
{
    private static void AssertValid(string json)
    {
        var violations = CDEventValidator.Violations(json);
        Assert.True(violations.Count == 0, $"{string.Join("; ", violations)}\n{json}");
    }

    private static void AssertInvalid(JsonNode e, string because) =>
        Assert.True(CDEventValidator.Violations(e.ToJsonString()).Count > 0, $"should be rejected: {because}\n{e.ToJsonString()}");

    /// <summary>Every message the stream holds on <paramref name="subject"/>, in order.</summary>
    private static async Task<List<INatsJSMsg<byte[]>>> StoredAsync(NatsJSContext js, string subject)
    {
        // One filter subject, not FilterSubjects: nats-server 2.9 ignores the multi-filter form and would deliver all.
        var consumer = await js.CreateOrUpdateConsumerAsync(Subjects.EventsStream, new ConsumerConfig("cdevents-read-" + Guid.NewGuid().ToString("N"))
        {
            FilterSubject = subject,
            DeliverPolicy = ConsumerConfigDeliverPolicy.All,
            AckPolicy = ConsumerConfigAckPolicy.None,
            InactiveThreshold = TimeSpan.FromSeconds(30),
            MemStorage = true,
        });
        var stored = new List<INatsJSMsg<byte[]>>();
        using var cts = new CancellationTokenSource(Deadlines.Event);
        while (consumer.Info.NumPending > 0 || stored.Count == 0)
        {
            var received = 0;
            await foreach (var msg in consumer.FetchNoWaitAsync<byte[]>(new NatsJSFetchOpts { MaxMsgs = 500 }, cancellationToken: cts.Token))
            {
                Assert.Equal(subject, msg.Subject);
                stored.Add(msg);
                received++;
            }

            await consumer.RefreshAsync(cts.Token);
            if (received == 0)
            {
                break;
            }
        }

        await js.DeleteConsumerAsync(Subjects.EventsStream, consumer.Info.Name);
        return stored;
    }

    [Fact]
    public async Task Events_of_a_run_with_a_failed_step_are_valid_cdevents_in_transition_order_on_nats_and_the_http_sink()
    {
        var driver = EngineFixture.Unique("drv");
        var type = await fx.DefinePipelineAsync(driver, ("build", 1), ("fail-test", 2));
        await using var nats = new NatsConnection(new NatsOpts { Url = fx.Nats.Url });
        var received = new ConcurrentQueue<(string Subject, string Json)>();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var subscription = await nats.SubscribeCoreAsync<byte[]>(Subjects.CDEvents("default"), cancellationToken: cts.Token);
        var reading = Task.Run(async () =>
        {
            await foreach (var msg in subscription.Msgs.ReadAllAsync(cts.Token))
            {
                received.Enqueue((msg.Subject, System.Text.Encoding.UTF8.GetString(msg.Data!)));
            }
        });
        await nats.PingAsync();

        await using var manager = await fx.StartDriverAsync(driver, type, cts.Token);
        var created = await fx.Host.PostJsonAsync("/resources", new { name = "web", resource = type, pipeline = type, spec = new { image = "web:1" } });
        var runId = created.GetProperty("runid").GetString()!;
        var run = await fx.Host.WaitForRunAsync(runId, Deadlines.Event);
        Assert.Equal("Failed", run.GetProperty("status").GetString());

        List<JsonElement> events = [];
        await Eventually.TrueAsync(
            () =>
            {
                events = received.Select(r => JsonDocument.Parse(r.Json).RootElement.Clone())
                    .Where(e => e.GetProperty("data").GetProperty("customData").GetProperty("runId").GetString() == runId)
                    .ToList();
                return events.Exists(e => e.GetProperty("type").GetString() == CDEvents.PipelineRunFinished);
            },
            Deadlines.Event,
            "the run's events should arrive on NATS");
        await subscription.UnsubscribeAsync();

        foreach (var e in events)
        {
            AssertValid(e.GetRawText());
            var data = e.GetProperty("data");
            Assert.Equal(CDEventValidator.SpecVersion, data.GetProperty("context").GetProperty("version").GetString());
            Assert.Equal(runId, data.GetProperty("customData").GetProperty("runId").GetString());
            // The schemas leave outcome optional; Conveyor promises one on every finished event, and none before.
            Assert.Equal(
                e.GetProperty("type").GetString()!.Contains(".finished.", StringComparison.Ordinal),
                data.GetProperty("subject").GetProperty("content").TryGetProperty("outcome", out _));
        }

        string Describe(JsonElement e)
        {
            var content = e.GetProperty("data").GetProperty("subject").GetProperty("content");
            var name = content.TryGetProperty("taskName", out var t) ? t.GetString() : "run";
            var outcome = content.TryGetProperty("outcome", out var o) ? ":" + o.GetString() : "";
            return $"{e.GetProperty("type").GetString()!.Split('.')[2..4].Aggregate((a, b) => a + "." + b)} {name}{outcome}";
        }

        Assert.Equal(
            [
                "pipelinerun.queued run",
                "pipelinerun.started run",
                "taskrun.started build",
                "taskrun.finished build:success",
                "taskrun.started fail-test",
                "taskrun.finished fail-test:failure",
                "taskrun.started fail-test",
                "taskrun.finished fail-test:failure",
                "pipelinerun.finished run:failure",
            ],
            events.Select(Describe));

        var ids = events.Select(e => e.GetProperty("id").GetString()!).ToList();
        Assert.Equal(ids.Count, ids.Distinct().Count());
        Assert.Contains($"{runId}:fail-test:2:taskrun.finished", ids);
        var finished = events[^1].GetProperty("data").GetProperty("subject");
        Assert.Equal($"default/{runId}", finished.GetProperty("id").GetString());
        Assert.StartsWith("step fail-test failed", finished.GetProperty("content").GetProperty("errors").GetString(), StringComparison.Ordinal);
        Assert.Equal($"http://conveyor.test/namespaces/default/runs/{runId}", finished.GetProperty("content").GetProperty("url").GetString());
        var task = events[2].GetProperty("data").GetProperty("subject").GetProperty("content");
        Assert.Equal($"default/{runId}", task.GetProperty("pipelineRun").GetProperty("id").GetString());

        // The same events reach the HTTP sink, byte for byte and valid, including the one whose first POST the sink
        // refused (the sink's very first request, possibly of an earlier test's run).
        var published = received.Select(r => r.Json).Where(j => JsonNode.Parse(j)!["data"]!["customData"]!["runId"]!.GetValue<string>() == runId)
            .ToDictionary(j => JsonNode.Parse(j)!["id"]!.GetValue<string>());
        Dictionary<string, string> sunk = [];
        await Eventually.TrueAsync(
            () =>
            {
                sunk = fx.SinkEvents.Select(j => (Id: JsonNode.Parse(j)!["id"]!.GetValue<string>(), Json: j)).DistinctBy(x => x.Id).ToDictionary(x => x.Id, x => x.Json);
                return ids.All(sunk.ContainsKey) && fx.RefusedEventId is { } refused && sunk.ContainsKey(refused);
            },
            Deadlines.Event,
            "the HTTP sink should receive every event, retrying a refused one");
        foreach (var id in ids)
        {
            AssertValid(sunk[id]);
            Assert.Equal(published[id], sunk[id]);
        }

        AssertValid(sunk[fx.RefusedEventId!]);

        // And JetStream keeps them, in the same order, under their ids (the conveyor-events stream).
        var js = new NatsJSContext(nats);
        var stored = (await StoredAsync(js, Subjects.CDEvents("default")))
            .Where(m => JsonNode.Parse(m.Data!)!["data"]!["customData"]!["runId"]!.GetValue<string>() == runId)
            .ToList();
        Assert.Equal(ids, stored.Select(m => m.Headers!["Nats-Msg-Id"].ToString()));
        Assert.Equal(events.Select(e => e.GetProperty("type").GetString()), stored.Select(m => m.Headers!["ce-type"].ToString()));
        Assert.All(stored, m => Assert.Equal("application/cloudevents+json", m.Headers!["Content-Type"].ToString()));
        Assert.Equal(ids.Select(id => published[id]), stored.Select(m => Encoding.UTF8.GetString(m.Data!)));
        await cts.CancelAsync();
        await reading.ContinueWith(_ => { }, TaskScheduler.Default);
    }

    [Fact]
    public void Events_built_without_a_base_url_are_valid_and_the_schemas_reject_what_breaks_the_spec()
    {
        var id = Guid.NewGuid();
        var at = DateTimeOffset.UtcNow;
        string Run(string type, string? outcome = null) =>
            CDEvents.PipelineRun($"{id}:1:{type}", type, "/conveyor", at, "default", id, "ship", null, outcome, outcome is null or "success" ? null : "step a failed", 1);
        string Task(string type, string? outcome = null) =>
            CDEvents.TaskRun($"{id}:a:1:{type}", type, "/conveyor", at, "default", id, "a", 1, "d", null, outcome, null);

        // Every kind Conveyor emits, as built with no Conveyor:CDEvents:BaseUrl: a started event must still carry a url.
        var started = Run(CDEvents.PipelineRunStarted);
        foreach (var e in new[] { Run(CDEvents.PipelineRunQueued), started, Run(CDEvents.PipelineRunFinished, "failure"), Task(CDEvents.TaskRunStarted), Task(CDEvents.TaskRunFinished, "error") })
        {
            AssertValid(e);
        }

        Assert.Equal($"/namespaces/default/runs/{id}", JsonNode.Parse(started)!["data"]!["subject"]!["content"]!["url"]!.GetValue<string>());

        JsonNode Started() => JsonNode.Parse(started)!;
        JsonNode Content(JsonNode e) => e["data"]!["subject"]!["content"]!;

        var noName = Started();
        Content(noName).AsObject().Remove("pipelineName");
        AssertInvalid(noName, "pipelinerun.started requires pipelineName");
        var noUrl = Started();
        Content(noUrl).AsObject().Remove("url");
        AssertInvalid(noUrl, "pipelinerun.started requires url");
        var withOutcome = Started();
        Content(withOutcome)["outcome"] = "success";
        AssertInvalid(withOutcome, "a started event has no outcome");
        var oldContext = Started();
        oldContext["data"]!["context"]!.AsObject().Remove("version");
        oldContext["data"]!["context"]!["specversion"] = "0.4.1";
        AssertInvalid(oldContext, "CDEvents 0.4 names the spec version 'version'");
        var wrongVersion = Started();
        wrongVersion["data"]!["context"]!["version"] = "0.3.0";
        AssertInvalid(wrongVersion, "the product claims 0.4.1");
        var badTime = Started();
        badTime["data"]!["context"]!["timestamp"] = "yesterday";
        AssertInvalid(badTime, "timestamp is a date-time");
        var wrongSubjectType = Started();
        wrongSubjectType["data"]!["subject"]!["type"] = "taskRun";
        AssertInvalid(wrongSubjectType, "a pipelinerun event's subject is a pipelineRun");
        var badCustomData = Started();
        badCustomData["data"]!["customData"] = 42;
        AssertInvalid(badCustomData, "customData is an object or a base64 string");
        var badOutcome = JsonNode.Parse(Task(CDEvents.TaskRunFinished, "success"))!;
        Content(badOutcome)["outcome"] = "meh";
        AssertInvalid(badOutcome, "outcome is success, failure or error");
        var noPipelineRunId = JsonNode.Parse(Task(CDEvents.TaskRunStarted))!;
        Content(noPipelineRunId)["pipelineRun"]!.AsObject().Remove("id");
        AssertInvalid(noPipelineRunId, "a taskRun's pipelineRun reference needs an id");

        // Links resolve through the links/ schemas: a PATH link needs "from".
        var linked = Started();
        linked["data"]!["context"]!["links"] = new JsonArray(new JsonObject { ["linkType"] = "PATH", ["from"] = new JsonObject { ["contextId"] = "x" } });
        AssertValid(linked.ToJsonString());
        linked["data"]!["context"]!["links"]![0]!.AsObject().Remove("from");
        AssertInvalid(linked, "a PATH link needs from");

        // The envelope: CloudEvents 1.0, repeating the context as the CDEvents binding says.
        var otherId = Started();
        otherId["id"] = "something-else";
        AssertInvalid(otherId, "the CloudEvent id is the CDEvent's");
        var otherSubject = Started();
        otherSubject["subject"] = "default/another-run";
        AssertInvalid(otherSubject, "the CloudEvent subject is the CDEvent subject's id");
        var noSpecVersion = Started();
        noSpecVersion.AsObject().Remove("specversion");
        AssertInvalid(noSpecVersion, "specversion is required");
        var unknownType = Started();
        unknownType["type"] = "dev.cdevents.pipelinerun.paused.0.1.0";
        AssertInvalid(unknownType, "no such event in 0.4.1");
    }

    [Fact]
    public async Task A_republished_event_is_stored_once()
    {
        var publisher = fx.Host.Services.GetRequiredService<CDEventPublisher>();
        var id = Guid.NewGuid();
        var ns = "dedup-" + id.ToString("N")[..8];
        OutboxEvent Event(string transition) => new()
        {
            Id = $"{id}:1:pipelinerun.{transition}",
            Type = CDEvents.PipelineRunQueued,
            Namespace = ns,
            Json = CDEvents.PipelineRun($"{id}:1:pipelinerun.{transition}", CDEvents.PipelineRunQueued, "/conveyor", DateTimeOffset.UtcNow, ns, id, "ship", null, null, null, 1),
        };
        var e = Event("queued");
        await using var nats = new NatsConnection(new NatsOpts { Url = fx.Nats.Url });
        var js = new NatsJSContext(nats);

        await publisher.PublishAsync([e]);
        await publisher.PublishAsync([Event("queued")]);
        var stored = await StoredAsync(js, Subjects.CDEvents(ns));
        var only = Assert.Single(stored);
        Assert.Equal(e.Id, only.Headers!["Nats-Msg-Id"].ToString());
        Assert.Equal(e.Json, Encoding.UTF8.GetString(only.Data!));

        // A different event on the same subject is stored: the subject's count is not stuck at one.
        await publisher.PublishAsync([Event("started")]);
        Assert.Equal([e.Id, $"{id}:1:pipelinerun.started"], (await StoredAsync(js, Subjects.CDEvents(ns))).Select(m => m.Headers!["Nats-Msg-Id"].ToString()));
    }

    /// <summary>
    /// A sink that accepts the connection and then never answers, with a ten-minute timeout: the first POST hangs for
    /// the whole test. Queueing a thousand events must still return at once — within a deadline far shorter than that
    /// timeout — with all but what the queue holds dropped.
    /// </summary>
    [Fact]
    public async Task A_hung_http_sink_never_makes_the_publisher_wait()
    {
        using var hung = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        hung.Start();
        var accepted = hung.AcceptSocketAsync();
        const int capacity = 10;
        var options = Options.Create(new CDEventsOptions
        {
            HttpSinkUrl = new Uri($"http://127.0.0.1:{((System.Net.IPEndPoint)hung.LocalEndpoint).Port}/events"),
            HttpSinkMaxAttempts = 1,
            HttpSinkQueueCapacity = capacity,
            HttpSinkTimeout = TimeSpan.FromMinutes(10),
        });
        using var sink = new CDEventHttpSink(options, NullLogger<CDEventHttpSink>.Instance);
        await sink.StartAsync(CancellationToken.None);
        sink.Enqueue("first", "{}"u8.ToArray());
        using var connection = await accepted.WaitAsync(Deadlines.Event);

        // The first POST is now in flight and will not end before the test does.
        await Task.Run(() =>
        {
            for (var i = 0; i < 1000; i++)
            {
                sink.Enqueue($"e{i}", "{}"u8.ToArray());
            }
        }).WaitAsync(Deadlines.Event);

        Assert.Equal(1000 - capacity, sink.Dropped);
        Assert.Equal(0, sink.Delivered);
        await sink.StopAsync(CancellationToken.None);
    }

    [Fact]
    public async Task Events_for_a_dead_http_sink_are_given_up_on()
    {
        var options = Options.Create(new CDEventsOptions
        {
            HttpSinkUrl = new Uri($"http://127.0.0.1:{ServerProcess.FindFreePort()}/events"),
            HttpSinkMaxAttempts = 1,
            HttpSinkQueueCapacity = 10,
            HttpSinkTimeout = TimeSpan.FromSeconds(30),
        });
        using var sink = new CDEventHttpSink(options, NullLogger<CDEventHttpSink>.Instance);
        await sink.StartAsync(CancellationToken.None);
        for (var i = 0; i < 1000; i++)
        {
            sink.Enqueue($"e{i}", "{}"u8.ToArray());
        }

        await Eventually.TrueAsync(() => sink.Dropped == 1000, Deadlines.Event, "every event should be given up on");
        Assert.Equal(0, sink.Delivered);
        await sink.StopAsync(CancellationToken.None);
    }
}
