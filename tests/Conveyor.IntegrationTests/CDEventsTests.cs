using System.Collections.Concurrent;
using System.Diagnostics;
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
using NJsonSchema;

namespace Conveyor.IntegrationTests;

/// <summary>CDEvents of real runs, validated against JSON Schemas written from the CDEvents 0.4.1 field definitions.</summary>
[Collection(OpsCollection.Name)]
public sealed class CDEventsTests(OpsFixture fx)
{
    private static readonly ConcurrentDictionary<string, Task<JsonSchema>> Schemas = new();

    private static Task<JsonSchema> SchemaFor(string type)
    {
        // dev.cdevents.pipelinerun.started.0.2.0 -> pipelinerun.started.json
        var parts = type.Split('.');
        var file = Path.Combine(AppContext.BaseDirectory, "CDEventSchemas", $"{parts[2]}.{parts[3]}.json");
        return Schemas.GetOrAdd(file, f => JsonSchema.FromFileAsync(f));
    }

    private static async Task<IReadOnlyList<string>> ViolationsAsync(string json)
    {
        var type = JsonNode.Parse(json)!["type"]!.GetValue<string>();
        var schema = await SchemaFor(type);
        return schema.Validate(json).Select(e => $"{e.Path}: {e.Kind}").ToList();
    }

    [Fact]
    public async Task Events_of_a_run_with_a_failed_step_are_valid_cdevents_in_transition_order_on_nats_and_the_http_sink()
    {
        var driver = EngineFixture.Unique("drv");
        var type = await fx.DefinePipelineAsync(driver, ("build", 1), ("fail-test", 2));
        await using var nats = new NatsConnection(new NatsOpts { Url = fx.Nats.Url });
        var received = new ConcurrentQueue<(string Subject, string Json)>();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
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
        var run = await fx.Host.WaitForRunAsync(runId, TimeSpan.FromSeconds(30));
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
            TimeSpan.FromSeconds(15),
            "the run's events should arrive on NATS");
        await subscription.UnsubscribeAsync();

        foreach (var e in events)
        {
            var violations = await ViolationsAsync(e.GetRawText());
            Assert.True(violations.Count == 0, $"{e.GetProperty("type")}: {string.Join("; ", violations)}\n{e}");
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

        // The same events reach the HTTP sink, including the one whose first POST the sink refused.
        await Eventually.TrueAsync(
            () =>
            {
                var sunk = fx.SinkEvents.Select(j => JsonDocument.Parse(j).RootElement.GetProperty("id").GetString()).ToHashSet();
                return ids.All(sunk.Contains) && fx.RefusedEventId is { } refused && sunk.Contains(refused);
            },
            TimeSpan.FromSeconds(20),
            "the HTTP sink should receive every event, retrying a refused one");

        // And JetStream keeps them (the conveyor-events stream).
        var js = new NatsJSContext(nats);
        var stream = await js.GetStreamAsync(Subjects.EventsStream);
        Assert.True(stream.Info.State.Messages >= events.Count);
        await cts.CancelAsync();
        await reading.ContinueWith(_ => { }, TaskScheduler.Default);
    }

    [Fact]
    public async Task The_schemas_reject_events_that_break_the_spec()
    {
        var id = Guid.NewGuid();
        var started = CDEvents.PipelineRun($"{id}:1:pipelinerun.started", CDEvents.PipelineRunStarted, "/conveyor", DateTimeOffset.UtcNow, "default", id, "ship", null, null, null, 1);
        Assert.Empty(await ViolationsAsync(started));

        var noName = JsonNode.Parse(started)!;
        noName["data"]!["subject"]!["content"]!.AsObject().Remove("pipelineName");
        Assert.NotEmpty(await ViolationsAsync(noName.ToJsonString()));

        // A started event must not carry an outcome; a finished one must.
        var withOutcome = JsonNode.Parse(started)!;
        withOutcome["data"]!["subject"]!["content"]!["outcome"] = "success";
        Assert.NotEmpty(await ViolationsAsync(withOutcome.ToJsonString()));
        var finished = CDEvents.TaskRun($"{id}:a:1:taskrun.finished", CDEvents.TaskRunFinished, "/conveyor", DateTimeOffset.UtcNow, "default", id, "a", 1, "d", null, "success", null);
        Assert.Empty(await ViolationsAsync(finished));
        var noOutcome = JsonNode.Parse(finished)!;
        noOutcome["data"]!["subject"]!["content"]!.AsObject().Remove("outcome");
        Assert.NotEmpty(await ViolationsAsync(noOutcome.ToJsonString()));
        var badOutcome = JsonNode.Parse(finished)!;
        badOutcome["data"]!["subject"]!["content"]!["outcome"] = "meh";
        Assert.NotEmpty(await ViolationsAsync(badOutcome.ToJsonString()));
        var wrongVersion = JsonNode.Parse(finished)!;
        wrongVersion["data"]!["context"]!["specversion"] = "0.3.0";
        Assert.NotEmpty(await ViolationsAsync(wrongVersion.ToJsonString()));
    }

    [Fact]
    public async Task A_republished_event_is_stored_once()
    {
        var publisher = fx.Host.Services.GetRequiredService<CDEventPublisher>();
        var id = Guid.NewGuid();
        var e = new OutboxEvent
        {
            Id = $"{id}:1:pipelinerun.queued",
            Type = CDEvents.PipelineRunQueued,
            Namespace = "dedup-" + id.ToString("N")[..8],
            Json = CDEvents.PipelineRun($"{id}:1:pipelinerun.queued", CDEvents.PipelineRunQueued, "/conveyor", DateTimeOffset.UtcNow, "default", id, "ship", null, null, null, 1),
        };
        await using var nats = new NatsConnection(new NatsOpts { Url = fx.Nats.Url });
        var js = new NatsJSContext(nats);

        await publisher.PublishAsync([e]);
        var first = (await js.GetStreamAsync(Subjects.EventsStream)).Info.State.Messages;
        await publisher.PublishAsync([e]);
        var second = (await js.GetStreamAsync(Subjects.EventsStream)).Info.State.Messages;

        // Other tests may add events meanwhile, but never this one twice: the subject is this test's own.
        var stream = await js.GetStreamAsync(Subjects.EventsStream, new NATS.Client.JetStream.Models.StreamInfoRequest { SubjectsFilter = Subjects.CDEvents(e.Namespace) });
        Assert.Equal(1, stream.Info.State.Subjects?[Subjects.CDEvents(e.Namespace)]);
        Assert.True(second >= first);
    }

    [Fact]
    public async Task A_dead_http_sink_never_makes_the_publisher_wait()
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
        var watch = Stopwatch.StartNew();
        for (var i = 0; i < 1000; i++)
        {
            sink.Enqueue(new OutboxEvent { Id = $"e{i}", Type = CDEvents.PipelineRunQueued, Namespace = "default", Json = "{}" });
        }

        // Enqueue never waits: 1,000 events against a dead sink take far less than one POST's timeout.
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"enqueueing took {watch.Elapsed}");
        await Eventually.TrueAsync(() => sink.Dropped == 1000, TimeSpan.FromSeconds(20), "every event should be given up on");
        Assert.Equal(0, sink.Delivered);
        await sink.StopAsync(CancellationToken.None);
    }
}
