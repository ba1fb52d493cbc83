using System.Globalization;
using System.Text;
using Conveyor.Contracts;
using Conveyor.Driver.Sdk.Tests.Infrastructure;
using Conveyor.Testing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;
using Xunit.Abstractions;

namespace Conveyor.Driver.Sdk.Tests;

public sealed class DriverLoggerTests(JetStreamFixture nats, ITestOutputHelper output) : IClassFixture<JetStreamFixture>
{
    private static readonly TimeSpan Deadline = Deadlines.Event;

    [Fact]
    public async Task Log_entries_are_published_identically_to_the_persisted_and_the_live_subjects()
    {
        var name = Wire.UniqueName("chatty");
        var runId = Guid.NewGuid().ToString();
        var driver = new TestDriver(
            name,
            async (e, context, ct) =>
            {
                await context.Logger.LogAsync($"reconciling {e.Resource.Name}", new Dictionary<string, string> { ["phase"] = "start" }, ct);
                context.Logger.AsLogger().LogWarning("image {Image} is old", "alpine:3");
                context.Logger.AsLogger().LogDebug("below the minimum level, dropped");
                return DriverResult.Ok();
            },
            "app");
        await using var live = await SubjectRecorder.StartAsync(nats.Connection, Subjects.LiveLogs(runId, name));
        await using var results = await SubjectRecorder.StartAsync(nats.Connection, Subjects.DriverResult);
        await using var manager = await RunningManager.StartAsync(
            driver,
            new DriverOptions { Name = name, NatsUrl = nats.Url, FetchExpiry = TimeSpan.FromSeconds(1) },
            new XunitLoggerFactory(output));

        await Wire.PublishAsync(nats.JetStream, $"drivers.{name}.resources.app", Wire.DriverMessageJson(runId, "app", "web", pipeline: "ci"), Wire.StepHeaders(runId, "build", 3));
        await Eventually.TrueAsync(() => results.ForRun(runId).Count == 1, Deadline, "the reconcile finishes");
        await Eventually.TrueAsync(() => live.Messages.Count == 2, Deadline, "both entries are sent live");

        var stored = await ReadStoredLogsAsync(runId, 2);
        Assert.Equal(live.Messages.Select(m => m.Text), stored);

        var first = live.Messages[0].Json;
        Assert.Equal(["runid", "driver", "pipeline", "timestamp", "message", "labels"], first.EnumerateObject().Select(p => p.Name));
        Assert.Equal(runId, first.GetProperty("runid").GetString());
        Assert.Equal(name, first.GetProperty("driver").GetString());
        Assert.Equal("ci", first.GetProperty("pipeline").GetString());
        Assert.Equal("reconciling web", first.GetProperty("message").GetString());
        var timestamp = first.GetProperty("timestamp").GetString()!;
        Assert.EndsWith("Z", timestamp, StringComparison.Ordinal);
        Assert.True(DateTimeOffset.TryParse(timestamp, CultureInfo.InvariantCulture, DateTimeStyles.None, out var parsed));
        Assert.InRange(DateTimeOffset.UtcNow - parsed, TimeSpan.Zero, TimeSpan.FromMinutes(1));
        Assert.Equal("{\"phase\":\"start\",\"step\":\"build\",\"attempt\":\"3\"}", first.GetProperty("labels").GetRawText());

        var second = live.Messages[1].Json;
        Assert.Equal("image alpine:3 is old", second.GetProperty("message").GetString());
        Assert.Equal("{\"level\":\"warning\",\"step\":\"build\",\"attempt\":\"3\"}", second.GetProperty("labels").GetRawText());

        // The ILogger record went out before the result did.
        Assert.Single(results.ForRun(runId));
    }

    [Fact]
    public void Entry_is_stamped_with_an_RFC_3339_UTC_time_from_the_time_provider()
    {
        var connection = new NatsConnection(NatsOpts.Default with { Url = nats.Url });
        var clock = new FixedTimeProvider(new DateTimeOffset(2026, 5, 2, 12, 11, 12, 500, TimeSpan.FromHours(2)));
        var logger = new DriverLogger(connection, new NatsJSContext(connection), clock, "run-1", "builder", "", new Dictionary<string, string>(), NullLogger.Instance);

        var entry = logger.CreateEntry("hello", null);

        Assert.Equal(
            "{\"runid\":\"run-1\",\"driver\":\"builder\",\"pipeline\":\"\",\"timestamp\":\"2026-05-02T10:11:12.5Z\",\"message\":\"hello\"}",
            Encoding.UTF8.GetString(DriverLogger.Serialize(entry)));
        Assert.Equal("2026-05-02T10:11:12Z", DriverLogger.FormatTimestamp(new DateTimeOffset(2026, 5, 2, 10, 11, 12, TimeSpan.Zero)));
    }

    [Fact]
    public void Bound_step_and_attempt_labels_cannot_be_replaced()
    {
        var connection = new NatsConnection(NatsOpts.Default with { Url = nats.Url });
        var bound = new Dictionary<string, string> { ["step"] = "build", ["attempt"] = "1" };
        var logger = new DriverLogger(connection, new NatsJSContext(connection), TimeProvider.System, "r", "d", "", bound, NullLogger.Instance);

        var entry = logger.CreateEntry("m", new Dictionary<string, string> { ["step"] = "spoofed", ["extra"] = "yes" });

        Assert.Equal("build", entry.Labels!["step"]);
        Assert.Equal("1", entry.Labels["attempt"]);
        Assert.Equal("yes", entry.Labels["extra"]);
    }

    private async Task<List<string>> ReadStoredLogsAsync(string runId, int count)
    {
        // logs-engine is a WorkQueue stream: a consumer on this run's subject alone does not overlap any other.
        var consumer = await nats.JetStream.CreateOrUpdateConsumerAsync(
            Subjects.LogsEngineStream,
            new ConsumerConfig("test-logs-" + runId[..8]) { FilterSubject = Subjects.Logs(runId), AckPolicy = ConsumerConfigAckPolicy.Explicit });
        var stored = new List<string>();
        await foreach (var msg in consumer.FetchAsync<byte[]>(new NatsJSFetchOpts { MaxMsgs = count, Expires = Deadlines.Event }))
        {
            stored.Add(Encoding.UTF8.GetString(msg.Data!));
            await msg.AckAsync();
        }

        return stored;
    }

    private sealed class FixedTimeProvider(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
