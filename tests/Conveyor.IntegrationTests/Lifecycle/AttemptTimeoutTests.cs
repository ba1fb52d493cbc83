using System.Text.Json;
using System.Text.Json.Nodes;
using Conveyor.Driver.Sdk;
using Conveyor.Testing;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Conveyor.IntegrationTests.Lifecycle;

/// <summary>No attempt waits for ever: the default attempt timeout, heartbeat leases, and dispatches or results too large.</summary>
[Collection(LifecycleCollection.Name)]
public sealed class AttemptTimeoutTests(LifecycleFixture fx)
{
    private sealed class SleepyDriver(string name, string resource, TimeSpan work) : IDriver
    {
        public string Name => name;

        public IReadOnlyCollection<string> Resources => [resource];

        public int Calls;

        public async Task<DriverResult> ReconcileAsync(DriverEvent driverEvent, DriverContext context, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref Calls);
            await Task.Delay(work, cancellationToken);
            return DriverResult.Ok($"{name} done after {work}");
        }
    }

    [Fact]
    public async Task A_driver_that_takes_a_step_and_never_answers_loses_it_at_the_default_timeout_and_the_retry_succeeds_on_another_instance()
    {
        var (type, driver) = (LifecycleFixture.Unique("hang"), LifecycleFixture.Unique("drv"));
        await fx.DefineAsync(type, new
        {
            name = type,
            resource = type,
            steps = new[] { new { id = "build", driver, retry = new { maxAttempts = 2, initialDelay = "100ms", jitter = 0.0 } } },
        });

        // The first instance binds the driver's durable consumer (as the SDK names it), takes one message, and then
        // neither answers nor heart-beats: a driver that died with the step, its message not yet redelivered.
        var js = new NatsJSContext(fx.NatsClient);
        var consumer = await js.CreateOrUpdateConsumerAsync("messages", new ConsumerConfig(DriverManager.StepsConsumerName(driver, type))
        {
            FilterSubject = $"drivers.{driver}.resources.{type}",
            AckPolicy = ConsumerConfigAckPolicy.Explicit,
            DeliverPolicy = ConsumerConfigDeliverPolicy.All,
            AckWait = TimeSpan.FromMinutes(5),
            MaxAckPending = 1,
        });
        var runId = await fx.CreateResourceAsync(type, "web", type);
        INatsJSMsg<byte[]>? taken = null;
        await Eventually.TrueAsync(
            async () =>
            {
                await foreach (var msg in consumer.FetchNoWaitAsync<byte[]>(new NatsJSFetchOpts { MaxMsgs = 1 }))
                {
                    taken = msg;
                }

                return taken is not null;
            },
            Deadlines.Event,
            "the hung instance takes attempt 1");
        Assert.Equal(1, JsonDocument.Parse(taken!.Data!).RootElement.GetProperty("attempt").GetInt32());

        // A healthy instance of the same driver joins; it gets the retry, since the hung one holds its only slot.
        var healthy = new SleepyDriver(driver, type, TimeSpan.Zero);
        await using var manager = new DriverManager(healthy, new DriverOptions { Name = driver, Resources = [type], NatsUrl = fx.Nats.Url, AckWait = TimeSpan.FromMinutes(5) });
        using var stop = new CancellationTokenSource();
        var running = manager.RunAsync(stop.Token);
        try
        {
            var run = await fx.Host.WaitForRunAsync(runId, Deadlines.Event);
            Assert.Equal("Succeeded", run.GetProperty("status").GetString());
            var attempts = run.GetProperty("steps")[0].GetProperty("attempts");
            Assert.Equal(2, attempts.GetArrayLength());
            Assert.True(attempts[0].GetProperty("timedOut").GetBoolean());
            Assert.Contains("Conveyor:Runs:DefaultAttemptTimeout", attempts[0].GetProperty("message").GetString(), StringComparison.Ordinal);
            var waited = attempts[0].GetProperty("finishedAt").GetDateTimeOffset() - attempts[0].GetProperty("dispatchedAt").GetDateTimeOffset();
            Assert.True(waited >= TimeSpan.FromSeconds(4), $"attempt 1 was cut after {waited}, before its 4 s deadline");
            Assert.True(attempts[1].GetProperty("success").GetBoolean());
            Assert.Equal(1, healthy.Calls);
        }
        finally
        {
            await stop.CancelAsync();
            await running;
        }
    }

    [Fact]
    public async Task An_sdk_driver_that_heart_beats_keeps_a_step_longer_than_the_default_timeout()
    {
        var (type, driver) = (LifecycleFixture.Unique("beat"), LifecycleFixture.Unique("drv"));
        await fx.DefineAsync(type, new { name = type, resource = type, steps = new[] { new { id = "build", driver } } });
        // Heart-beats every second (a third of the ack wait); the step takes 10 s, well past the 4 s default timeout.
        var sleepy = new SleepyDriver(driver, type, TimeSpan.FromSeconds(10));
        await using var manager = new DriverManager(sleepy, new DriverOptions { Name = driver, Resources = [type], NatsUrl = fx.Nats.Url, AckWait = TimeSpan.FromSeconds(3) });
        using var stop = new CancellationTokenSource();
        var running = manager.RunAsync(stop.Token);
        try
        {
            await manager.WaitUntilReadyAsync();
            var runId = await fx.CreateResourceAsync(type, "web", type);
            await Eventually.TrueAsync(
                async () => (await fx.Host.GetJsonAsync($"/runs/{runId}")).GetProperty("steps")[0].GetProperty("status").GetString() == "Running",
                Deadlines.Event,
                "a heartbeat shows the step Running");
            var run = await fx.Host.WaitForRunAsync(runId, Deadlines.Event);
            Assert.Equal("Succeeded", run.GetProperty("status").GetString());
            var attempts = run.GetProperty("steps")[0].GetProperty("attempts");
            Assert.Equal(1, attempts.GetArrayLength());
            Assert.True(attempts[0].TryGetProperty("lastHeartbeatAt", out _));
            Assert.Equal(1, sleepy.Calls);
        }
        finally
        {
            await stop.CancelAsync();
            await running;
        }
    }

    [Fact]
    public async Task A_dispatch_larger_than_the_server_accepts_fails_its_step_with_a_clear_error()
    {
        var (type, driver) = (LifecycleFixture.Unique("big"), LifecycleFixture.Unique("drv"));
        await fx.DefineAsync(type, new
        {
            name = type,
            resource = type,
            steps = new object[]
            {
                new { id = "a", driver, timeout = "5m", dependsOn = Array.Empty<string>() },
                new { id = "b", driver, timeout = "5m", dependsOn = Array.Empty<string>() },
                new { id = "c", driver, timeout = "5m", dependsOn = new[] { "a", "b" } },
            },
        });
        // Each output fits a message (600 kB); together, as the inputs of step c, they do not (the server takes 1 MiB).
        await using var raw = await RawDriver.StartAsync(fx.Nats.Url, driver, $"drivers.{driver}.resources.{type}",
            _ => (true, "ok", JsonValue.Create(new string('x', 600_000))));
        var runId = await fx.CreateResourceAsync(type, "web", type);
        var run = await fx.Host.WaitForRunAsync(runId, Deadlines.Event);
        Assert.Equal("Failed", run.GetProperty("status").GetString());
        var c = run.GetProperty("steps")[2];
        Assert.Equal("Failed", c.GetProperty("status").GetString());
        Assert.False(c.GetProperty("waitingForDriver").GetBoolean());
        Assert.Contains("max_payload", c.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal(1, c.GetProperty("attempts").GetArrayLength());
    }

    [Fact]
    public async Task Result_data_over_the_limit_fails_the_attempt_naming_the_limit()
    {
        var (type, driver) = (LifecycleFixture.Unique("data"), LifecycleFixture.Unique("drv"));
        await fx.DefineAsync(type, new { name = type, resource = type, steps = new[] { new { id = "a", driver, timeout = "5m" } } });
        await using var raw = await RawDriver.StartAsync(fx.Nats.Url, driver, $"drivers.{driver}.resources.{type}",
            _ => (true, "ok", JsonValue.Create(new string('x', 750_000))));
        var runId = await fx.CreateResourceAsync(type, "web", type);
        var run = await fx.Host.WaitForRunAsync(runId, Deadlines.Event);
        Assert.Equal("Failed", run.GetProperty("status").GetString());
        var attempt = run.GetProperty("steps")[0].GetProperty("attempts")[0];
        Assert.False(attempt.GetProperty("success").GetBoolean());
        Assert.StartsWith("result data of 750002 bytes exceeds the limit of 700000 bytes (Conveyor:Limits:MaxResultDataBytes)", attempt.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.False(attempt.TryGetProperty("data", out var data) && data.ValueKind != JsonValueKind.Null);
    }
}
