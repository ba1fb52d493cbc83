using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Conveyor.Bench;

/// <summary>
/// The transport's own floor, on the engine's nats-server in the same run: what a step costs on JetStream alone.
/// This process publishes a request to a file-backed Interest stream (like <c>messages</c>); a worker in a separate
/// process (<c>conveyor-bench-driver floor</c>) takes it from a durable pull consumer with explicit ack, publishes a
/// result to a file-backed WorkQueue stream (like <c>pipeline-engine</c>), awaits its ack and acks the request; this
/// process consumes the result from a durable pull consumer and acks it. One round trip = one engine step's messaging.
/// </summary>
internal sealed class FloorScenario(EngineUnderTest engine, BenchSettings settings, Metrics metrics, TextWriter log)
{
    private const string RequestSubject = "bench.floor.req";
    private const string ResultStream = "bench-floor-res";
    private const int BodyBytes = 512;

    public async Task RunAsync()
    {
        var js = new NatsJSContext(engine.Nats);
        await js.CreateOrUpdateStreamAsync(new StreamConfig("bench-floor-req", [RequestSubject])
        {
            Retention = StreamConfigRetention.Interest,
            Storage = StreamConfigStorage.File,
        });
        await js.CreateOrUpdateStreamAsync(new StreamConfig(ResultStream, ["bench.floor.res"])
        {
            Retention = StreamConfigRetention.Workqueue,
            Storage = StreamConfigStorage.File,
        });
        await using var worker = ChildProcess.Start(
            "floor-worker",
            ChildProcess.BuiltAssembly("DriverAssembly", "CONVEYOR_BENCH_DRIVER"),
            ["floor", "--nats", engine.NatsUrl, "--concurrency", "256"],
            readyLine: "ready");
        await worker.WaitReadyAsync(TimeSpan.FromSeconds(60));
        var results = await js.CreateOrUpdateConsumerAsync(ResultStream, new ConsumerConfig("floor-results")
        {
            AckPolicy = ConsumerConfigAckPolicy.Explicit,
            MaxAckPending = 4096,
        });

        var waiting = new ConcurrentDictionary<long, TaskCompletionSource>();
        using var stop = new CancellationTokenSource();
        var consumer = Task.Run(async () =>
        {
            try
            {
                await foreach (var msg in results.ConsumeAsync<byte[]>(opts: new NatsJSConsumeOpts { MaxMsgs = 512 }, cancellationToken: stop.Token))
                {
                    await msg.AckAsync(cancellationToken: stop.Token);
                    if (msg.Data is { Length: >= 8 } body && waiting.TryRemove(BinaryPrimitives.ReadInt64LittleEndian(body), out var done))
                    {
                        done.TrySetResult();
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
        });

        long id = 0;
        async Task<double> RoundTripAsync()
        {
            var body = new byte[BodyBytes];
            var key = Interlocked.Increment(ref id);
            BinaryPrimitives.WriteInt64LittleEndian(body, key);
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            waiting[key] = done;
            var start = Stopwatch.GetTimestamp();
            var ack = await js.PublishAsync(RequestSubject, body);
            ack.EnsureSuccess();
            await done.Task.WaitAsync(TimeSpan.FromSeconds(60));
            return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }

        // Warm-up, then one in flight (latency) and as many in flight as B3 keeps steps in flight (throughput).
        for (var i = 0; i < 50; i++)
        {
            await RoundTripAsync();
        }

        foreach (var c in new[] { 1, settings.InFlight })
        {
            var histogram = new LatencyHistogram();
            var next = 0;
            // The transport's own CPU per round trip: its nats-server, the worker and this tool (the silo idles).
            Dictionary<string, TimeSpan> Cpu() => new(StringComparer.Ordinal)
            {
                ["nats-server"] = engine.Silo.ChildrenCpu().GetValueOrDefault("nats-server"),
                ["floor-worker"] = worker.Cpu,
                ["tool"] = CpuSplit.Self(),
            };
            var cpuStart = Cpu();
            var clock = Stopwatch.StartNew();
            await Task.WhenAll(Enumerable.Range(0, c).Select(async _ =>
            {
                while (Interlocked.Increment(ref next) <= settings.FloorMessages)
                {
                    var ms = await RoundTripAsync();
                    lock (histogram)
                    {
                        histogram.RecordMs(ms);
                    }
                }
            }));
            var elapsed = clock.Elapsed;
            var cpuEnd = Cpu();
            var rate = settings.FloorMessages / elapsed.TotalSeconds;
            metrics.Add($"floor.{(c == 1 ? "c1" : "saturated")}.round_trips_per_s", rate);
            metrics.Add($"floor.{(c == 1 ? "c1" : "saturated")}.p50_ms", histogram.PercentileMs(0.50));
            metrics.Add($"floor.{(c == 1 ? "c1" : "saturated")}.p99_ms", histogram.PercentileMs(0.99));
            await log.WriteLineAsync($"  floor, {c} in flight: {rate:F0} round trips/s, p50 {histogram.PercentileMs(0.5):F2} ms, p99 {histogram.PercentileMs(0.99):F2} ms");
            if (c != 1)
            {
                await CpuSplit.AddAsync("floor.cpu_ms_per_round_trip", cpuStart, cpuEnd, settings.FloorMessages, elapsed.TotalSeconds, metrics, log, "round trip");
            }
        }

        await stop.CancelAsync();
        await consumer;
        await js.DeleteStreamAsync("bench-floor-req");
        await js.DeleteStreamAsync(ResultStream);
    }
}
