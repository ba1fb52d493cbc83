using System.Text.Json;
using Conveyor.Contracts;
using Conveyor.Driver.Sdk.Tests.Infrastructure;
using Conveyor.Testing;
using NATS.Client.JetStream;
using Xunit.Abstractions;

namespace Conveyor.Driver.Sdk.Tests;

public sealed class DeliveryTests(JetStreamFixture nats, ITestOutputHelper output) : IClassFixture<JetStreamFixture>
{
    private static readonly TimeSpan Deadline = Deadlines.Event;

    [Fact]
    public async Task Pipeline_step_reaches_the_driver_and_exactly_one_result_is_published()
    {
        var name = Wire.UniqueName("echo");
        var runId = Guid.NewGuid().ToString();
        var messageId = MessageIds.NewId();
        var driver = new TestDriver(name, (e, c, _) => Task.FromResult(DriverResult.Ok("built", new { image = "alpine:3", count = 3 })), "app");
        await using var results = await SubjectRecorder.StartAsync(nats.Connection, Subjects.DriverResult);
        await using var manager = await RunningManager.StartAsync(driver, Options(name), new XunitLoggerFactory(output));

        await Wire.PublishAsync(
            nats.JetStream,
            $"drivers.{name}.resources.app",
            Wire.DriverMessageJson(runId, "app", "build-app", "process", pipeline: "ci", messageId: messageId),
            Wire.StepHeaders(runId, "build", 2));

        await Eventually.TrueAsync(() => results.ForRun(runId).Count == 1, Deadline, "the driver publishes a result");
        await Eventually.TrueAsync(() => NoAckPendingAsync(DriverManager.StepsConsumerName(name, "app")), Deadline, "the message is acked");

        var received = Assert.Single(driver.Received);
        Assert.Equal("process", received.Event);
        Assert.Equal(runId, received.RunId);
        Assert.Equal(messageId, received.MessageId);
        Assert.Equal($"drivers.{name}.resources.app", received.Subject);
        Assert.Equal("build", received.StepId);
        Assert.Equal(2, received.Attempt);
        Assert.Equal(1, received.DeliveryCount);
        Assert.Equal("build-app", received.Resource.Name);
        Assert.Equal("app", received.Resource.ResourceType);
        Assert.Equal("ci", received.Resource.Pipeline);
        Assert.Equal("1", received.Resource.Metadata!["version"]);
        Assert.Equal("alpine:3", received.Resource.Spec!.Value.GetProperty("image").GetString());
        Assert.StartsWith("{\"id\":", received.Payload, StringComparison.Ordinal);

        var result = Assert.Single(results.ForRun(runId));
        var json = result.Json;
        Assert.Equal(["event", "run_id", "resource", "driverresult"], json.EnumerateObject().Select(p => p.Name));
        Assert.Equal("driver.result", json.GetProperty("event").GetString());
        Assert.Equal(runId, json.GetProperty("run_id").GetString());
        Assert.Equal(JsonValueKind.Object, json.GetProperty("resource").ValueKind);
        Assert.Equal("build-app", json.GetProperty("resource").GetProperty("name").GetString());
        Assert.Equal("app", json.GetProperty("resource").GetProperty("resource").GetString());
        var driverResult = json.GetProperty("driverresult");
        Assert.Equal(["success", "message", "data", "driver"], driverResult.EnumerateObject().Select(p => p.Name));
        Assert.True(driverResult.GetProperty("success").GetBoolean());
        Assert.Equal("built", driverResult.GetProperty("message").GetString());
        Assert.Equal("{\"image\":\"alpine:3\",\"count\":3}", driverResult.GetProperty("data").GetRawText());
        Assert.Equal(name, driverResult.GetProperty("driver").GetString());
        Assert.Equal("build", result.Header(Headers.StepId));
        Assert.Equal("2", result.Header(Headers.Attempt));
        Assert.Equal(runId, result.Header(Headers.RunId));
    }

    [Fact]
    public async Task Resource_without_pipeline_is_delivered_from_the_resources_subject()
    {
        var name = Wire.UniqueName("watcher");
        var resourceType = Wire.UniqueName("kind");
        var runId = Guid.NewGuid().ToString();
        var driver = new TestDriver(name, resourceType);
        await using var results = await SubjectRecorder.StartAsync(nats.Connection, Subjects.DriverResult);
        await using var manager = await RunningManager.StartAsync(driver, Options(name), new XunitLoggerFactory(output));

        await Wire.PublishAsync(nats.JetStream, $"resources.{resourceType}", Wire.DriverMessageJson(runId, resourceType, "plain"));

        await Eventually.TrueAsync(() => results.ForRun(runId).Count == 1, Deadline, "the driver publishes a result");
        var received = Assert.Single(driver.Received);
        Assert.Equal("create", received.Event);
        Assert.Equal($"resources.{resourceType}", received.Subject);
        Assert.Null(received.StepId);
        Assert.Null(received.Attempt);
        Assert.Null(received.Resource.Pipeline);
        var result = Assert.Single(results.ForRun(runId));
        Assert.True(result.Json.GetProperty("driverresult").GetProperty("success").GetBoolean());
        Assert.Null(result.Header(Headers.StepId));
        Assert.Equal(runId, result.Header(Headers.RunId));
    }

    [Fact]
    public async Task Exception_in_reconcile_is_reported_as_a_failed_result_with_its_message()
    {
        var name = Wire.UniqueName("broken");
        var runId = Guid.NewGuid().ToString();
        var driver = new TestDriver(name, (_, _, _) => throw new InvalidOperationException("disk on fire"), "app");
        await using var results = await SubjectRecorder.StartAsync(nats.Connection, Subjects.DriverResult);
        await using var manager = await RunningManager.StartAsync(driver, Options(name), new XunitLoggerFactory(output));

        await Wire.PublishAsync(nats.JetStream, $"drivers.{name}.resources.app", Wire.DriverMessageJson(runId, "app", "x"), Wire.StepHeaders(runId, "deploy", 1));

        await Eventually.TrueAsync(() => results.ForRun(runId).Count == 1, Deadline, "the driver publishes a failure result");
        var driverResult = Assert.Single(results.ForRun(runId)).Json.GetProperty("driverresult");
        Assert.False(driverResult.GetProperty("success").GetBoolean());
        Assert.Equal("disk on fire", driverResult.GetProperty("message").GetString());
        Assert.Equal(JsonValueKind.Null, driverResult.GetProperty("data").ValueKind);
        Assert.Equal(name, driverResult.GetProperty("driver").GetString());
        await Eventually.TrueAsync(() => NoAckPendingAsync(DriverManager.StepsConsumerName(name, "app")), Deadline, "the message is acked");
    }

    [Fact]
    public async Task Malformed_message_is_terminated_without_redelivery_and_later_messages_are_processed()
    {
        var name = Wire.UniqueName("strict");
        var runId = Guid.NewGuid().ToString();
        var driver = new TestDriver(name, "app");
        await using var results = await SubjectRecorder.StartAsync(nats.Connection, Subjects.DriverResult);
        await using var manager = await RunningManager.StartAsync(driver, Options(name), new XunitLoggerFactory(output));
        var consumer = DriverManager.StepsConsumerName(name, "app");

        await Wire.PublishAsync(nats.JetStream, $"drivers.{name}.resources.app", "{\"event\":\"create\",\"payload\":");
        await Wire.PublishAsync(nats.JetStream, $"drivers.{name}.resources.app", Wire.DriverMessageJson(runId, "app", "after"));

        await Eventually.TrueAsync(() => results.ForRun(runId).Count == 1, Deadline, "the valid message is still processed");
        await Eventually.TrueAsync(() => NoAckPendingAsync(consumer), Deadline, "both messages are settled");

        // No redelivery, ever: JetStream redelivers only a message pending acknowledgement, and the ack floor has reached
        // the last delivery — both messages are settled (the malformed one terminated), none was delivered twice.
        var info = (await nats.JetStream.GetConsumerAsync(Subjects.MessagesStream, consumer)).Info;
        Assert.Equal(0, info.NumAckPending);
        Assert.Equal(0, info.NumRedelivered);
        Assert.Equal(2UL, info.Delivered.ConsumerSeq);
        Assert.Equal(info.Delivered.ConsumerSeq, info.AckFloor.ConsumerSeq);
        Assert.Single(driver.Received);
        Assert.False(manager.Run.IsCompleted);
    }

    [Fact]
    public async Task Payload_that_is_not_a_resource_yields_a_failure_result_for_its_run()
    {
        var name = Wire.UniqueName("picky");
        var runId = Guid.NewGuid().ToString();
        var driver = new TestDriver(name, "app");
        await using var results = await SubjectRecorder.StartAsync(nats.Connection, Subjects.DriverResult);
        await using var manager = await RunningManager.StartAsync(driver, Options(name), new XunitLoggerFactory(output));

        var body = $"{{\"event\":\"create\",\"payload\":\"not a resource\",\"id\":\"{MessageIds.NewId()}\",\"run_id\":\"{runId}\"}}";
        await Wire.PublishAsync(nats.JetStream, $"drivers.{name}.resources.app", body, Wire.StepHeaders(runId, "lint", 1));

        await Eventually.TrueAsync(() => results.ForRun(runId).Count == 1, Deadline, "a failure result is published for the run");
        var result = Assert.Single(results.ForRun(runId));
        var driverResult = result.Json.GetProperty("driverresult");
        Assert.False(driverResult.GetProperty("success").GetBoolean());
        Assert.StartsWith("Malformed driver message", driverResult.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal("lint", result.Header(Headers.StepId));
        Assert.Empty(driver.Received);
        await Eventually.TrueAsync(() => NoAckPendingAsync(DriverManager.StepsConsumerName(name, "app")), Deadline, "the message is terminated");
    }

    [Fact]
    public void Run_id_is_read_from_the_start_of_broken_json()
    {
        Assert.Equal("r-1", DriverManager.ScanRunId("{\"event\":\"x\",\"run_id\":\"r-1\",\"payload\":"u8));
        Assert.Equal("r-2", DriverManager.ScanRunId("{\"nested\":{\"run_id\":\"inner\"},\"RUN_ID\":\"r-2\""u8));
        Assert.Null(DriverManager.ScanRunId("{\"payload\":\"x\","u8));
        Assert.Null(DriverManager.ScanRunId("not json"u8));
    }

    private DriverOptions Options(string name) => new()
    {
        Name = name,
        NatsUrl = nats.Url,
        FetchExpiry = TimeSpan.FromSeconds(1),
    };

    private async Task<bool> NoAckPendingAsync(string consumer)
    {
        var info = (await nats.JetStream.GetConsumerAsync(Subjects.MessagesStream, consumer)).Info;
        return info.NumAckPending == 0 && info.NumPending == 0;
    }
}
