using Conveyor.Contracts;
using Conveyor.Driver.Sdk.Tests.Infrastructure;
using Conveyor.Testing;
using NATS.Client.JetStream;
using Xunit.Abstractions;

namespace Conveyor.Driver.Sdk.Tests;

public sealed class ShutdownTests(JetStreamFixture nats, ITestOutputHelper output) : IClassFixture<JetStreamFixture>
{
    private static readonly TimeSpan Deadline = Deadlines.Event;

    [Fact]
    public async Task Shutdown_hands_unfinished_work_back_to_another_instance()
    {
        var name = Wire.UniqueName("handoff");
        var runId = Guid.NewGuid().ToString();
        var cancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var stuck = new TestDriver(
            name,
            async (_, _, ct) =>
            {
                try
                {
                    await Task.Delay(Timeout.Infinite, ct);
                }
                catch (OperationCanceledException)
                {
                    cancelled.TrySetResult();
                    throw;
                }

                return DriverResult.Ok("never");
            },
            "app");
        await using var results = await SubjectRecorder.StartAsync(nats.Connection, Subjects.DriverResult);
        var options = new DriverOptions { Name = name, NatsUrl = nats.Url, FetchExpiry = TimeSpan.FromSeconds(1), ShutdownGracePeriod = TimeSpan.FromMilliseconds(300) };
        var first = await RunningManager.StartAsync(stuck, options, new XunitLoggerFactory(output));
        await using (first)
        {
            await Wire.PublishAsync(nats.JetStream, $"drivers.{name}.resources.app", Wire.DriverMessageJson(runId, "app", "x"), Wire.StepHeaders(runId, "s", 1));
            await Eventually.TrueAsync(() => !stuck.Received.IsEmpty, Deadline, "the first instance starts the reconcile");
            await first.StopAsync();
        }

        await cancelled.Task.WaitAsync(Deadline);
        Assert.Empty(results.ForRun(runId));

        var healthy = new TestDriver(name, "app");
        await using var second = await RunningManager.StartAsync(healthy, options, new XunitLoggerFactory(output));
        await Eventually.TrueAsync(() => results.ForRun(runId).Count == 1, Deadline, "the second instance processes the handed-back message");
        var redelivered = Assert.Single(healthy.Received);
        Assert.Equal(2, redelivered.DeliveryCount);
        Assert.Equal("s", redelivered.StepId);
        Assert.True(Assert.Single(results.ForRun(runId)).Json.GetProperty("driverresult").GetProperty("success").GetBoolean());
    }

    /// <summary>
    /// The reconcile holds until shutdown has been asked for, then finishes: the manager must wait for it (the grace
    /// period is far longer than this takes) and publish and ack its result before its run ends.
    /// </summary>
    [Fact]
    public async Task Shutdown_lets_in_flight_reconciles_finish_within_the_grace_period()
    {
        var name = Wire.UniqueName("finisher");
        var runId = Guid.NewGuid().ToString();
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var driver = new TestDriver(
            name,
            async (_, _, ct) =>
            {
                started.TrySetResult();
                await release.Task.WaitAsync(ct);
                return DriverResult.Ok("finished during shutdown");
            },
            "app");
        await using var results = await SubjectRecorder.StartAsync(nats.Connection, Subjects.DriverResult);
        var manager = await RunningManager.StartAsync(
            driver,
            new DriverOptions { Name = name, NatsUrl = nats.Url, FetchExpiry = TimeSpan.FromSeconds(1), ShutdownGracePeriod = Deadlines.Event },
            new XunitLoggerFactory(output));
        await using (manager)
        {
            await Wire.PublishAsync(nats.JetStream, $"drivers.{name}.resources.app", Wire.DriverMessageJson(runId, "app", "x"));
            await started.Task.WaitAsync(Deadline);
            var stopping = manager.RequestStopAsync();
            Assert.False(stopping.IsCompleted, "the manager stopped while a reconcile was in flight");
            release.SetResult();
            await stopping.WaitAsync(Deadline);

            // RunAsync returns only after the in-flight reconcile has published and acked.
            var result = Assert.Single(results.ForRun(runId));
            Assert.Equal("finished during shutdown", result.Json.GetProperty("driverresult").GetProperty("message").GetString());
            Assert.Equal(0, manager.Manager.InFlightCount);
        }

        var info = (await nats.JetStream.GetConsumerAsync(Subjects.MessagesStream, DriverManager.StepsConsumerName(name, "app"))).Info;
        Assert.Equal(0, info.NumAckPending);
        Assert.Equal(0UL, info.NumPending);
    }
}
