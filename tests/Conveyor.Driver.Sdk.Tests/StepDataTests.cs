using System.Text.Json;
using Conveyor.Contracts;
using Conveyor.Driver.Sdk.Tests.Infrastructure;
using Conveyor.Testing;
using Xunit.Abstractions;

namespace Conveyor.Driver.Sdk.Tests;

/// <summary>The engine's extension fields of a driver message: <c>step</c>, <c>attempt</c>, <c>params</c>, <c>inputs</c>.</summary>
public sealed class StepDataTests(JetStreamFixture nats, ITestOutputHelper output) : IClassFixture<JetStreamFixture>
{
    private static readonly TimeSpan Deadline = Deadlines.Event;

    [Fact]
    public async Task Params_and_inputs_reach_the_driver_event_and_the_result_names_the_step_from_the_body()
    {
        var name = Wire.UniqueName("deployer");
        var runId = Guid.NewGuid().ToString();
        var driver = new TestDriver(name, "app");
        await using var results = await SubjectRecorder.StartAsync(nats.Connection, Subjects.DriverResult);
        await using var manager = await RunningManager.StartAsync(driver, Options(name), new XunitLoggerFactory(output));

        var body = Wire.WithExtensions(
            Wire.DriverMessageJson(runId, "app", "web", "process", pipeline: "ship"),
            step: "deploy",
            attempt: 3,
            paramsJson: """{"region":"eu-west-1","replicas":3,"canary":{"percent":10}}""",
            inputsJson: """{"build":{"image":"registry.local/web:7"},"test":{"passed":12,"failed":0}}""");
        // No step headers: the body alone says which step and attempt this is.
        await Wire.PublishAsync(nats.JetStream, $"drivers.{name}.resources.app", body);

        await Eventually.TrueAsync(() => results.ForRun(runId).Count == 1, Deadline, "the driver publishes a result");
        var received = Assert.Single(driver.Received);
        Assert.Equal("deploy", received.StepId);
        Assert.Equal(3, received.Attempt);
        Assert.Equal("""{"region":"eu-west-1","replicas":3,"canary":{"percent":10}}""", received.Params!.Value.GetRawText());
        Assert.Equal(10, received.Params.Value.GetProperty("canary").GetProperty("percent").GetInt32());
        Assert.Equal(["build", "test"], received.Inputs.Keys.Order(StringComparer.Ordinal));
        Assert.Equal("registry.local/web:7", received.Inputs["build"].GetProperty("image").GetString());
        Assert.Equal(12, received.Inputs["test"].GetProperty("passed").GetInt32());
        Assert.Equal("web", received.Resource.Name);
        Assert.Equal("ship", received.Resource.Pipeline);

        var result = Assert.Single(results.ForRun(runId));
        Assert.Equal("deploy", result.Header(Headers.StepId));
        Assert.Equal("3", result.Header(Headers.Attempt));
        Assert.True(result.Json.GetProperty("driverresult").GetProperty("success").GetBoolean());
    }

    [Fact]
    public async Task Step_fields_in_the_body_win_over_the_step_headers()
    {
        var name = Wire.UniqueName("precedence");
        var runId = Guid.NewGuid().ToString();
        var driver = new TestDriver(name, "app");
        await using var results = await SubjectRecorder.StartAsync(nats.Connection, Subjects.DriverResult);
        await using var manager = await RunningManager.StartAsync(driver, Options(name), new XunitLoggerFactory(output));

        var body = Wire.WithExtensions(Wire.DriverMessageJson(runId, "app", "web", "process"), step: "from-body", attempt: 4);
        await Wire.PublishAsync(nats.JetStream, $"drivers.{name}.resources.app", body, Wire.StepHeaders(runId, "from-header", 1));

        await Eventually.TrueAsync(() => results.ForRun(runId).Count == 1, Deadline, "the driver publishes a result");
        var received = Assert.Single(driver.Received);
        Assert.Equal("from-body", received.StepId);
        Assert.Equal(4, received.Attempt);
        var result = Assert.Single(results.ForRun(runId));
        Assert.Equal("from-body", result.Header(Headers.StepId));
        Assert.Equal("4", result.Header(Headers.Attempt));
    }

    [Fact]
    public async Task Original_message_without_extension_fields_is_parsed_as_before()
    {
        var name = Wire.UniqueName("classic");
        var runId = Guid.NewGuid().ToString();
        var messageId = MessageIds.NewId();
        var driver = new TestDriver(name, "app");
        await using var results = await SubjectRecorder.StartAsync(nats.Connection, Subjects.DriverResult);
        await using var manager = await RunningManager.StartAsync(driver, Options(name), new XunitLoggerFactory(output));

        var body = Wire.DriverMessageJson(runId, "app", "web", "process", pipeline: "ship", messageId: messageId);
        Assert.DoesNotContain("\"step\"", body, StringComparison.Ordinal);
        await Wire.PublishAsync(nats.JetStream, $"drivers.{name}.resources.app", body, Wire.StepHeaders(runId, "2", 1));

        await Eventually.TrueAsync(() => results.ForRun(runId).Count == 1, Deadline, "the driver publishes a result");
        var received = Assert.Single(driver.Received);
        Assert.Equal("process", received.Event);
        Assert.Equal(runId, received.RunId);
        Assert.Equal(messageId, received.MessageId);
        Assert.Equal("2", received.StepId);
        Assert.Equal(1, received.Attempt);
        Assert.Null(received.Params);
        Assert.Empty(received.Inputs);
        Assert.Equal("alpine:3", received.Resource.Spec!.Value.GetProperty("image").GetString());
        var result = Assert.Single(results.ForRun(runId));
        Assert.True(result.Json.GetProperty("driverresult").GetProperty("success").GetBoolean());
        Assert.Equal("2", result.Header(Headers.StepId));
        Assert.Equal("1", result.Header(Headers.Attempt));
    }

    [Fact]
    public async Task Null_params_and_empty_inputs_read_as_absent()
    {
        var name = Wire.UniqueName("sparse");
        var runId = Guid.NewGuid().ToString();
        var driver = new TestDriver(name, "app");
        await using var results = await SubjectRecorder.StartAsync(nats.Connection, Subjects.DriverResult);
        await using var manager = await RunningManager.StartAsync(driver, Options(name), new XunitLoggerFactory(output));

        var body = Wire.WithExtensions(Wire.DriverMessageJson(runId, "app", "web"), step: "1", attempt: 1, paramsJson: "null", inputsJson: "{}");
        await Wire.PublishAsync(nats.JetStream, $"drivers.{name}.resources.app", body);

        await Eventually.TrueAsync(() => results.ForRun(runId).Count == 1, Deadline, "the driver publishes a result");
        var received = Assert.Single(driver.Received);
        Assert.Null(received.Params);
        Assert.Empty(received.Inputs);
        Assert.Equal("1", received.StepId);
    }

    [Fact]
    public void A_driver_event_built_by_hand_has_empty_inputs_and_a_context_without_cancel_reason()
    {
        var resource = new Resource { Name = "web", ResourceType = "app" };
        var driverEvent = new DriverEvent
        {
            Event = EventNames.Process,
            RunId = "run-1",
            MessageId = MessageIds.NewId(),
            Payload = ConveyorJson.SerializeResource(resource),
            Resource = resource,
            Subject = "drivers.deployer.resources.app",
            Params = JsonSerializer.SerializeToElement(new { region = "eu" }),
        };
        var context = new DriverContext("deployer", driverEvent, DriverLogger.Create("run-1", "deployer", (_, _) => Task.CompletedTask));
        Assert.Empty(driverEvent.Inputs);
        Assert.Equal("eu", driverEvent.Params!.Value.GetProperty("region").GetString());
        Assert.Null(context.CancellationReason);
    }

    private DriverOptions Options(string name) => new()
    {
        Name = name,
        NatsUrl = nats.Url,
        FetchExpiry = TimeSpan.FromSeconds(1),
    };
}
