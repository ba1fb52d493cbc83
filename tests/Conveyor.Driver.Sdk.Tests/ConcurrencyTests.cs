using System.Collections.Concurrent;
using Conveyor.Contracts;
using Conveyor.Driver.Sdk.Tests.Infrastructure;
using Conveyor.Testing;
using NATS.Client.JetStream;
using Xunit.Abstractions;

namespace Conveyor.Driver.Sdk.Tests;

public sealed class ConcurrencyTests(JetStreamFixture nats, ITestOutputHelper output) : IClassFixture<JetStreamFixture>
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task No_more_than_MaxConcurrency_reconciles_run_at_once_across_consumers()
    {
        var name = Wire.UniqueName("slow");
        var current = 0;
        var peak = 0;
        var driver = new TestDriver(
            name,
            async (e, _, ct) =>
            {
                var now = Interlocked.Increment(ref current);
                InterlockedMax(ref peak, now);
                await Task.Delay(300, ct);
                Interlocked.Decrement(ref current);
                return DriverResult.Ok();
            },
            "app");
        await using var results = await SubjectRecorder.StartAsync(nats.Connection, Subjects.DriverResult);
        await using var manager = await RunningManager.StartAsync(driver, new DriverOptions { Name = name, NatsUrl = nats.Url, FetchExpiry = TimeSpan.FromSeconds(1), MaxConcurrency = 2 }, new XunitLoggerFactory(output));

        var runs = Enumerable.Range(0, 6).Select(_ => Guid.NewGuid().ToString()).ToArray();
        for (var i = 0; i < runs.Length; i++)
        {
            // Half pipeline steps, half plain resources: the limit is shared by both consumers.
            var subject = i % 2 == 0 ? $"drivers.{name}.resources.app" : "resources.app";
            await Wire.PublishAsync(nats.JetStream, subject, Wire.DriverMessageJson(runs[i], "app", $"r{i}"));
        }

        await Eventually.TrueAsync(() => runs.All(r => results.ForRun(r).Count == 1), Deadline, "all six messages are processed");
        Assert.Equal(2, Volatile.Read(ref peak));
    }

    [Fact]
    public async Task Reconcile_longer_than_AckWait_is_kept_alive_by_heartbeats_and_delivered_once()
    {
        var name = Wire.UniqueName("patient");
        var runId = Guid.NewGuid().ToString();
        var driver = new TestDriver(
            name,
            async (_, _, ct) =>
            {
                await Task.Delay(TimeSpan.FromSeconds(5), ct);
                return DriverResult.Ok("finally");
            },
            "app");
        await using var results = await SubjectRecorder.StartAsync(nats.Connection, Subjects.DriverResult);
        await using var manager = await RunningManager.StartAsync(
            driver,
            new DriverOptions { Name = name, NatsUrl = nats.Url, FetchExpiry = TimeSpan.FromSeconds(1), AckWait = TimeSpan.FromSeconds(2) },
            new XunitLoggerFactory(output));

        await Wire.PublishAsync(nats.JetStream, $"drivers.{name}.resources.app", Wire.DriverMessageJson(runId, "app", "long"));

        await Eventually.TrueAsync(() => results.ForRun(runId).Count == 1, Deadline, "the long reconcile finishes");
        var info = (await nats.JetStream.GetConsumerAsync(Subjects.MessagesStream, DriverManager.StepsConsumerName(name, "app"))).Info;
        Assert.Equal(0, info.NumRedelivered);
        Assert.Equal(1UL, info.Delivered.ConsumerSeq);
        Assert.Single(driver.Received);
    }

    [Fact]
    public async Task Instances_with_the_same_name_split_the_work_and_process_each_message_once()
    {
        var name = Wire.UniqueName("shared");
        var processedBy = new ConcurrentDictionary<string, ConcurrentBag<string>>();
        TestDriver Instance(string instance) => new(
            name,
            async (e, _, ct) =>
            {
                processedBy.GetOrAdd(e.RunId, _ => []).Add(instance);
                await Task.Delay(150, ct);
                return DriverResult.Ok(instance);
            },
            "app");
        var first = Instance("first");
        var second = Instance("second");
        await using var results = await SubjectRecorder.StartAsync(nats.Connection, Subjects.DriverResult);
        var options = new DriverOptions { Name = name, NatsUrl = nats.Url, FetchExpiry = TimeSpan.FromSeconds(1), MaxConcurrency = 2, MaxAckPending = 4 };
        await using var a = await RunningManager.StartAsync(first, options, new XunitLoggerFactory(output));
        await using var b = await RunningManager.StartAsync(second, options, new XunitLoggerFactory(output));

        var runs = Enumerable.Range(0, 12).Select(_ => Guid.NewGuid().ToString()).ToArray();
        foreach (var run in runs)
        {
            await Wire.PublishAsync(nats.JetStream, $"drivers.{name}.resources.app", Wire.DriverMessageJson(run, "app", "x"));
        }

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
