using System.Collections.Concurrent;
using System.Diagnostics;
using Conveyor.Contracts;
using Conveyor.Driver.Sdk.Tests.Infrastructure;
using Conveyor.Testing;
using NATS.Client.JetStream;
using Xunit.Abstractions;

namespace Conveyor.Driver.Sdk.Tests;

/// <summary>The engine's cancel messages on core NATS <c>conveyor.cancel.{driver}</c>, published as raw JSON.</summary>
public sealed class CancellationTests(JetStreamFixture nats, ITestOutputHelper output) : IClassFixture<JetStreamFixture>
{
    private static readonly TimeSpan Deadline = Deadlines.Event;

    [Fact]
    public async Task Matching_cancel_stops_a_long_reconcile_and_its_message_is_acked_once()
    {
        var name = Wire.UniqueName("cancel");
        var runId = Guid.NewGuid().ToString();
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var observed = new TaskCompletionSource<string?>(TaskCreationOptions.RunContinuationsAsynchronously);
        var driver = new TestDriver(
            name,
            async (_, context, ct) =>
            {
                started.TrySetResult();
                try
                {
                    await Task.Delay(Timeout.Infinite, ct);
                }
                catch (OperationCanceledException)
                {
                    observed.TrySetResult(context.CancellationReason);
                    throw;
                }

                return DriverResult.Ok("never");
            },
            "app");
        var options = Options(name);
        await using var results = await SubjectRecorder.StartAsync(nats.Connection, Subjects.DriverResult);
        await using var manager = await RunningManager.StartAsync(driver, options, new XunitLoggerFactory(output));

        var body = Wire.WithExtensions(Wire.DriverMessageJson(runId, "app", "web", "process"), step: "deploy", attempt: 2);
        await Wire.PublishAsync(nats.JetStream, $"drivers.{name}.resources.app", body, Wire.StepHeaders(runId, "deploy", 2));
        await started.Task.WaitAsync(Deadline);

        var clock = Stopwatch.StartNew();
        await Wire.PublishCoreAsync(nats.Connection, Subjects.Cancel(name), Wire.CancelJson(name, runId, "deploy", 2, "run cancelled by user"));
        // The reconcile waits forever unless cancelled, so seeing the cancel at all is the proof; how long it took is
        // reported, not asserted.
        var reason = await observed.Task.WaitAsync(Deadline);
        output.WriteLine($"cancellation observed after {clock.ElapsedMilliseconds} ms");

        Assert.Equal("run cancelled by user", reason);
        await Eventually.TrueAsync(() => results.ForRun(runId).Count == 1, Deadline, "a cancelled result is published");
        var result = Assert.Single(results.ForRun(runId));
        var driverResult = result.Json.GetProperty("driverresult");
        Assert.False(driverResult.GetProperty("success").GetBoolean());
        Assert.Equal("cancelled: run cancelled by user", driverResult.GetProperty("message").GetString());
        Assert.Equal(name, driverResult.GetProperty("driver").GetString());
        Assert.Equal("deploy", result.Header(Headers.StepId));
        Assert.Equal("2", result.Header(Headers.Attempt));

        var consumer = DriverManager.StepsConsumerName(name, "app");
        await Eventually.TrueAsync(() => NoAckPendingAsync(consumer), Deadline, "the message is acked");
        // No redelivery, ever: the ack floor has reached the only delivery, and JetStream redelivers only what is
        // pending acknowledgement.
        var info = (await nats.JetStream.GetConsumerAsync(Subjects.MessagesStream, consumer)).Info;
        Assert.Equal(0, info.NumAckPending);
        Assert.Equal(0, info.NumRedelivered);
        Assert.Equal(1UL, info.Delivered.ConsumerSeq);
        Assert.Equal(1UL, info.AckFloor.ConsumerSeq);
        Assert.Single(driver.Received);
        Assert.Single(results.ForRun(runId));
        Assert.Equal(0, manager.Manager.InFlightCount);
    }

    [Fact]
    public async Task Cancels_for_another_run_step_or_attempt_and_malformed_cancels_cancel_nothing()
    {
        var name = Wire.UniqueName("precise");
        var runId = Guid.NewGuid().ToString();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var contexts = new ConcurrentDictionary<string, DriverContext>();
        var cancelled = new TaskCompletionSource<(string Step, string? Reason)>(TaskCreationOptions.RunContinuationsAsynchronously);
        var driver = new TestDriver(
            name,
            async (e, context, ct) =>
            {
                contexts[e.StepId!] = context;
                try
                {
                    await release.Task.WaitAsync(ct);
                }
                catch (OperationCanceledException)
                {
                    cancelled.TrySetResult((e.StepId!, context.CancellationReason));
                    throw;
                }

                return DriverResult.Ok($"{e.StepId} finished");
            },
            "app");
        var options = Options(name);
        options.MaxConcurrency = 2;
        await using var results = await SubjectRecorder.StartAsync(nats.Connection, Subjects.DriverResult);
        await using var manager = await RunningManager.StartAsync(driver, options, new XunitLoggerFactory(output));

        // Step and attempt travel only in the JSON body here, as the engine's extension fields.
        var subject = $"drivers.{name}.resources.app";
        await Wire.PublishAsync(nats.JetStream, subject, Wire.WithExtensions(Wire.DriverMessageJson(runId, "app", "web", "process"), step: "a", attempt: 1));
        await Wire.PublishAsync(nats.JetStream, subject, Wire.WithExtensions(Wire.DriverMessageJson(runId, "app", "web", "process"), step: "b", attempt: 2));
        await Eventually.TrueAsync(() => contexts.Count == 2, Deadline, "both steps are being reconciled");

        var cancels = Subjects.Cancel(name);
        await Wire.PublishCoreAsync(nats.Connection, cancels, Wire.CancelJson(name, Guid.NewGuid().ToString(), "a", 1, "another run"));
        await Wire.PublishCoreAsync(nats.Connection, cancels, Wire.CancelJson(name, runId, "c", 1, "another step"));
        await Wire.PublishCoreAsync(nats.Connection, cancels, Wire.CancelJson(name, runId, "b", 1, "another attempt"));
        await Wire.PublishCoreAsync(nats.Connection, cancels, Wire.CancelJson(name, runId, "a", 2, "another attempt"));
        await Wire.PublishCoreAsync(nats.Connection, cancels, "{\"run_id\":");
        await Wire.PublishCoreAsync(nats.Connection, cancels, "");
        await Wire.PublishCoreAsync(nats.Connection, cancels, "{\"step\":\"a\",\"attempt\":1}");
        // Core NATS keeps one publisher's order and the manager handles cancels one by one, so once this last one has
        // taken effect every cancel above has been looked at; had one of them matched, its reason would have won.
        await Wire.PublishCoreAsync(nats.Connection, cancels, Wire.CancelJson(name, runId, "b", 2, "the matching one"));

        var (step, reason) = await cancelled.Task.WaitAsync(Deadline);
        Assert.Equal("b", step);
        Assert.Equal("the matching one", reason);
        Assert.Null(contexts["a"].CancellationReason);

        release.SetResult();
        await Eventually.TrueAsync(() => results.ForRun(runId).Count == 2, Deadline, "both steps report a result");
        var byStep = results.ForRun(runId).ToDictionary(r => r.Header(Headers.StepId)!, r => r.Json.GetProperty("driverresult"));
        Assert.True(byStep["a"].GetProperty("success").GetBoolean());
        Assert.Equal("a finished", byStep["a"].GetProperty("message").GetString());
        Assert.False(byStep["b"].GetProperty("success").GetBoolean());
        Assert.Equal("cancelled: the matching one", byStep["b"].GetProperty("message").GetString());
        await Eventually.TrueAsync(() => NoAckPendingAsync(DriverManager.StepsConsumerName(name, "app")), Deadline, "both messages are acked");
        Assert.False(manager.Run.IsCompleted);
    }

    [Fact]
    public async Task Cancel_for_a_message_waiting_for_a_slot_settles_it_without_a_reconcile()
    {
        var name = Wire.UniqueName("queued");
        var runId = Guid.NewGuid().ToString();
        var firstCancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var driver = new TestDriver(
            name,
            async (_, _, ct) =>
            {
                try
                {
                    await Task.Delay(Timeout.Infinite, ct);
                }
                catch (OperationCanceledException)
                {
                    firstCancelled.TrySetResult();
                    throw;
                }

                return DriverResult.Ok("never");
            },
            "app");
        var options = Options(name);
        options.MaxConcurrency = 1;
        options.MaxAckPending = 2;
        await using var results = await SubjectRecorder.StartAsync(nats.Connection, Subjects.DriverResult);
        await using var manager = await RunningManager.StartAsync(driver, options, new XunitLoggerFactory(output));

        var subject = $"drivers.{name}.resources.app";
        await Wire.PublishAsync(nats.JetStream, subject, Wire.DriverMessageJson(runId, "app", "web", "process"), Wire.StepHeaders(runId, "first", 1));
        await Eventually.TrueAsync(() => driver.Received.Count == 1, Deadline, "the first message takes the only slot");
        await Wire.PublishAsync(nats.JetStream, subject, Wire.DriverMessageJson(runId, "app", "web", "process"), Wire.StepHeaders(runId, "second", 1));
        await Eventually.TrueAsync(() => manager.Manager.InFlightCount == 2, Deadline, "the second message waits for a slot");

        // Cancels are handled in order: once the first reconcile sees its cancel, the second message is cancelled too.
        await Wire.PublishCoreAsync(nats.Connection, Subjects.Cancel(name), Wire.CancelJson(name, runId, "second", 1, "not needed"));
        await Wire.PublishCoreAsync(nats.Connection, Subjects.Cancel(name), Wire.CancelJson(name, runId, "first", 1, "timed out"));
        await firstCancelled.Task.WaitAsync(Deadline);

        await Eventually.TrueAsync(() => results.ForRun(runId).Count == 2, Deadline, "both messages report a result");
        var byStep = results.ForRun(runId).ToDictionary(r => r.Header(Headers.StepId)!, r => r.Json.GetProperty("driverresult").GetProperty("message").GetString());
        Assert.Equal("cancelled: timed out", byStep["first"]);
        Assert.Equal("cancelled: not needed", byStep["second"]);
        Assert.Equal(["first"], driver.Received.Select(e => e.StepId));
        await Eventually.TrueAsync(() => NoAckPendingAsync(DriverManager.StepsConsumerName(name, "app")), Deadline, "both messages are acked");
    }

    [Fact]
    public async Task Reconcile_that_ignores_its_token_still_reports_the_cancel()
    {
        var name = Wire.UniqueName("stubborn");
        var runId = Guid.NewGuid().ToString();
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var finish = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        DriverContext? seen = null;
        var driver = new TestDriver(
            name,
            async (_, context, _) =>
            {
                seen = context;
                started.TrySetResult();
                await finish.Task;
                return DriverResult.Ok("finished anyway");
            },
            "app");
        await using var results = await SubjectRecorder.StartAsync(nats.Connection, Subjects.DriverResult);
        await using var manager = await RunningManager.StartAsync(driver, Options(name), new XunitLoggerFactory(output));

        await Wire.PublishAsync(nats.JetStream, $"drivers.{name}.resources.app", Wire.DriverMessageJson(runId, "app", "web"), Wire.StepHeaders(runId, "s", 1));
        await started.Task.WaitAsync(Deadline);
        await Wire.PublishCoreAsync(nats.Connection, Subjects.Cancel(name), Wire.CancelJson(name, runId, "s", 1, "run failed fast"));
        await Eventually.TrueAsync(() => seen!.CancellationReason is not null, Deadline, "the context shows the cancel");
        finish.SetResult();

        await Eventually.TrueAsync(() => results.ForRun(runId).Count == 1, Deadline, "one result is published");
        var driverResult = Assert.Single(results.ForRun(runId)).Json.GetProperty("driverresult");
        Assert.False(driverResult.GetProperty("success").GetBoolean());
        Assert.Equal("cancelled: run failed fast", driverResult.GetProperty("message").GetString());
        await Eventually.TrueAsync(() => NoAckPendingAsync(DriverManager.StepsConsumerName(name, "app")), Deadline, "the message is acked");
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
