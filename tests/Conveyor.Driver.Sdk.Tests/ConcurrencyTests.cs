using System.Collections.Concurrent;
using Conveyor.Contracts;
using Conveyor.Driver.Sdk.Tests.Infrastructure;
using Conveyor.Testing;
using NATS.Client.JetStream;
using Xunit.Abstractions;

namespace Conveyor.Driver.Sdk.Tests;

public sealed class ConcurrencyTests(JetStreamFixture nats, ITestOutputHelper output) : IClassFixture<JetStreamFixture>
{
    private static readonly TimeSpan Deadline = Deadlines.Event;

    /// <summary>
    /// Every reconcile holds until the test lets go. Six messages on two consumers: two run, and each consumer then
    /// holds one more that waits for a slot — a state that lasts until the gate opens, so the count of running
    /// reconciles in it is exact, not a matter of timing.
    /// </summary>
    [Fact]
    public async Task No_more_than_MaxConcurrency_reconciles_run_at_once_across_consumers()
    {
        var name = Wire.UniqueName("slow");
        // A resource type of its own: resources.{type} is not scoped by driver, and any driver of the type would read it.
        var kind = Wire.UniqueName("kind");
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var current = 0;
        var peak = 0;
        var driver = new TestDriver(
            name,
            async (e, _, ct) =>
            {
                var now = Interlocked.Increment(ref current);
                InterlockedMax(ref peak, now);
                await gate.Task.WaitAsync(ct);
                Interlocked.Decrement(ref current);
                return DriverResult.Ok();
            },
            kind);
        await using var results = await SubjectRecorder.StartAsync(nats.Connection, Subjects.DriverResult);
        // Room on the server for more than the slots, so only the manager's own limit holds the waiting messages back.
        var options = new DriverOptions { Name = name, NatsUrl = nats.Url, FetchExpiry = TimeSpan.FromSeconds(1), MaxConcurrency = 2, MaxAckPending = 6 };
        await using var manager = await RunningManager.StartAsync(driver, options, new XunitLoggerFactory(output));

        var runs = Enumerable.Range(0, 6).Select(_ => Guid.NewGuid().ToString()).ToArray();
        for (var i = 0; i < runs.Length; i++)
        {
            // Half pipeline steps, half plain resources: the limit is shared by both consumers.
            var subject = i % 2 == 0 ? $"drivers.{name}.resources.{kind}" : $"resources.{kind}";
            await Wire.PublishAsync(nats.JetStream, subject, Wire.DriverMessageJson(runs[i], kind, $"r{i}"));
        }

        await Eventually.TrueAsync(() => manager.Manager.InFlightCount == 4, Deadline, "two reconciles run and each consumer holds one message for a slot");
        Assert.Equal(2, Volatile.Read(ref current));
        Assert.Equal(2, Volatile.Read(ref peak));

        gate.SetResult();
        await Eventually.TrueAsync(() => runs.All(r => results.ForRun(r).Count == 1), Deadline, "all six messages are processed");
        Assert.Equal(2, Volatile.Read(ref peak));
    }

    /// <summary>
    /// The reconcile holds until the test has seen three of its progress acknowledgements go to the server (sent every
    /// third of AckWait), so it outlives AckWait by construction; JetStream must not have delivered the message again.
    /// AckWait is 6 s so that only a stall of over 4 s between two heartbeats could cause a redelivery.
    /// </summary>
    [Fact]
    public async Task Reconcile_longer_than_AckWait_is_kept_alive_by_heartbeats_and_delivered_once()
    {
        var name = Wire.UniqueName("patient");
        var runId = Guid.NewGuid().ToString();
        var ackWait = TimeSpan.FromSeconds(6);
        var consumer = DriverManager.StepsConsumerName(name, "app");
        var progress = 0;
        var heartbeats = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var acks = await nats.Connection.SubscribeCoreAsync<byte[]>($"$JS.ACK.{Subjects.MessagesStream}.{consumer}.>");
        var watching = Task.Run(async () =>
        {
            await foreach (var ack in acks.Msgs.ReadAllAsync())
            {
                if (ack.Data is { } data && System.Text.Encoding.ASCII.GetString(data) == "+WPI" && Interlocked.Increment(ref progress) == 3)
                {
                    heartbeats.TrySetResult();
                }
            }
        });
        await nats.Connection.PingAsync();

        var held = System.Diagnostics.Stopwatch.StartNew();
        var driver = new TestDriver(
            name,
            async (_, _, ct) =>
            {
                held.Restart();
                await heartbeats.Task.WaitAsync(ct);
                held.Stop();
                return DriverResult.Ok("finally");
            },
            "app");
        await using var results = await SubjectRecorder.StartAsync(nats.Connection, Subjects.DriverResult);
        await using var manager = await RunningManager.StartAsync(
            driver,
            new DriverOptions { Name = name, NatsUrl = nats.Url, FetchExpiry = TimeSpan.FromSeconds(1), AckWait = ackWait },
            new XunitLoggerFactory(output));

        await Wire.PublishAsync(nats.JetStream, $"drivers.{name}.resources.app", Wire.DriverMessageJson(runId, "app", "long"));

        await Eventually.TrueAsync(() => results.ForRun(runId).Count == 1, Deadline + ackWait, "the long reconcile finishes");
        Assert.True(held.Elapsed >= ackWait * 2 / 3, $"three heartbeats a third of AckWait apart came after {held.Elapsed.TotalSeconds:0.0} s");
        var info = (await nats.JetStream.GetConsumerAsync(Subjects.MessagesStream, consumer)).Info;
        Assert.Equal(0, info.NumRedelivered);
        Assert.Equal(1UL, info.Delivered.ConsumerSeq);
        Assert.Single(driver.Received);
        await acks.UnsubscribeAsync();
        await watching;
    }

    /// <summary>
    /// Two instances of one driver share one durable consumer. The first takes what its two slots and one waiting
    /// message allow while every reconcile holds; the consumer's max_ack_pending of 4 leaves exactly one message
    /// that only the second instance can take. Then everything is let go and each message is processed once.
    /// </summary>
    [Fact]
    public async Task Instances_with_the_same_name_split_the_work_and_process_each_message_once()
    {
        var name = Wire.UniqueName("shared");
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var processedBy = new ConcurrentDictionary<string, ConcurrentBag<string>>();
        TestDriver Instance(string instance) => new(
            name,
            async (e, _, ct) =>
            {
                processedBy.GetOrAdd(e.RunId, _ => []).Add(instance);
                await gate.Task.WaitAsync(ct);
                return DriverResult.Ok(instance);
            },
            "app");
        var first = Instance("first");
        var second = Instance("second");
        await using var results = await SubjectRecorder.StartAsync(nats.Connection, Subjects.DriverResult);
        var options = new DriverOptions { Name = name, NatsUrl = nats.Url, FetchExpiry = TimeSpan.FromSeconds(1), MaxConcurrency = 2, MaxAckPending = 4 };
        await using var a = await RunningManager.StartAsync(first, options, new XunitLoggerFactory(output));

        var runs = Enumerable.Range(0, 12).Select(_ => Guid.NewGuid().ToString()).ToArray();
        foreach (var run in runs)
        {
            await Wire.PublishAsync(nats.JetStream, $"drivers.{name}.resources.app", Wire.DriverMessageJson(run, "app", "x"));
        }

        await Eventually.TrueAsync(() => a.Manager.InFlightCount == 3 && first.Received.Count == 2, Deadline, "the first instance runs two and holds a third");
        await using var b = await RunningManager.StartAsync(second, options, new XunitLoggerFactory(output));
        await Eventually.TrueAsync(() => !second.Received.IsEmpty, Deadline, "the second instance takes the message the first cannot");

        gate.SetResult();
        await Eventually.TrueAsync(() => runs.All(r => results.ForRun(r).Count == 1), Deadline, "every message gets one result");
        Assert.All(runs, r => Assert.Single(processedBy[r]));
        Assert.NotEmpty(first.Received);
        Assert.NotEmpty(second.Received);
        Assert.Equal(runs.Length, first.Received.Count + second.Received.Count);
    }

    private static void InterlockedMax(ref int target, int value)
    {
        var seen = Volatile.Read(ref target);
        while (value > seen)
        {
            var previous = Interlocked.CompareExchange(ref target, value, seen);
            if (previous == seen)
            {
                return;
            }

            seen = previous;
        }
    }
}
