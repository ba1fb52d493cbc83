using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Conveyor.Bench.Hangfire;
using Hangfire;
using StackExchange.Redis;

namespace Conveyor.Bench;

/// <summary>
/// Hangfire (Hangfire.Core with Hangfire.Redis.StackExchange storage) on the same ten-step chains as B3: this process
/// enqueues each chain's first job; a Hangfire server in another process (<c>conveyor-bench-driver hangfire-worker</c>,
/// <see cref="PeerSettings.Workers"/> workers) runs the jobs, each enqueuing the next step's job, and the last one
/// tells this process over Redis pub/sub (see <see cref="HangfireChain"/>).
/// </summary>
internal sealed class HangfirePeer(BenchSettings settings, PeerSettings peers, Metrics metrics, TextWriter log)
{
    private static readonly TimeSpan ChainTimeout = TimeSpan.FromSeconds(120);
    private const int EnqueueThreads = 4;

    public async Task RunAsync()
    {
        await using var redis = await PeerRedis.StartAsync("hangfire", peers.Fsync);
        await using var worker = ChildProcess.Start(
            "hangfire-worker",
            ChildProcess.BuiltAssembly("DriverAssembly", "CONVEYOR_BENCH_DRIVER"),
            ["hangfire-worker", "--redis", redis.Endpoint, "--concurrency", peers.Workers.ToString(CultureInfo.InvariantCulture)],
            readyLine: "ready");
        await worker.WaitReadyAsync(TimeSpan.FromSeconds(60));

        HangfireChain.ConfigureGlobal();
        using var connection = await ConnectionMultiplexer.ConnectAsync(redis.Endpoint);
        var jobs = new BackgroundJobClient(HangfireChain.Storage(connection));
        var waiting = new ConcurrentDictionary<string, TaskCompletionSource<ChainEnd>>(StringComparer.Ordinal);
        var subscriber = connection.GetSubscriber();
        await subscriber.SubscribeAsync(RedisChannel.Literal(HangfireChain.DoneChannel), (_, message) =>
        {
            var parts = message.ToString().Split(' ');
            if (parts.Length == 3 && waiting.TryRemove(parts[0], out var done))
            {
                done.TrySetResult(new ChainEnd(long.Parse(parts[1], CultureInfo.InvariantCulture), long.Parse(parts[2], CultureInfo.InvariantCulture)));
            }
        });

        // The client API is synchronous (it waits for Redis before it returns): the enqueues run on threads of their own,
        // so that waiting for them never holds the thread pool that completes Redis replies and the chains' ends.
        using var starts = new BlockingCollection<(string Id, int Steps, TaskCompletionSource<ChainEnd> Done)>();
        var enqueuers = Enumerable.Range(0, EnqueueThreads).Select(i => Task.Factory.StartNew(
            () =>
            {
                foreach (var (id, steps, done) in starts.GetConsumingEnumerable())
                {
                    try
                    {
                        HangfireChain.Start(jobs, id, steps);
                    }
                    catch (Exception e) when (e is RedisException or BackgroundJobClientException)
                    {
                        waiting.TryRemove(id, out _);
                        done.TrySetException(e);
                    }
                }
            },
            CancellationToken.None,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default)).ToList();

        var next = 0;
        async Task<ChainEnd> ChainAsync(int steps)
        {
            var id = "c" + Interlocked.Increment(ref next).ToString(CultureInfo.InvariantCulture);
            var done = new TaskCompletionSource<ChainEnd>(TaskCreationOptions.RunContinuationsAsynchronously);
            waiting[id] = done;
            starts.Add((id, steps, done));
            try
            {
                return await done.Task.WaitAsync(ChainTimeout);
            }
            catch (TimeoutException)
            {
                throw new TimeoutException($"hangfire chain {id} did not end within {ChainTimeout}:\n{worker.Tail}");
            }
        }

        try
        {
            await PeerLoops.RunAsync(
                "hangfire",
                ChainAsync,
                () => new(StringComparer.Ordinal) { ["redis-server"] = redis.Cpu, ["hangfire-server"] = worker.Cpu, ["tool"] = CpuSplit.Self() },
                settings,
                metrics,
                log);
        }
        finally
        {
            starts.CompleteAdding();
            await Task.WhenAll(enqueuers);
        }

        await subscriber.UnsubscribeAllAsync();
    }
}

/// <summary>When a chain's last job was enqueued and when a worker started it, in Unix microseconds.</summary>
internal readonly record struct ChainEnd(long EnqueuedMicros, long StartedMicros)
{
    public double StartMs => (StartedMicros - EnqueuedMicros) / 1000.0;
}

/// <summary>The measurement both peers share with B3 and B1 c1, for a peer that this process drives.</summary>
internal static class PeerLoops
{
    /// <summary>
    /// Ten-step chains with <see cref="BenchSettings.InFlight"/> in flight (closed loop) for a warm-up of a fifth of
    /// <see cref="BenchSettings.Seconds"/> and then the measured seconds, counting the chains that end inside the
    /// window, as B3 does; then <see cref="BenchSettings.Runs"/> one-step chains one at a time, as B1 c1 does.
    /// </summary>
    /// <param name="cpu">CPU time so far of each process the peer runs, sampled at the measured window's edges.</param>
    public static async Task RunAsync(
        string name, Func<int, Task<ChainEnd>> chain, Func<Dictionary<string, TimeSpan>> cpu, BenchSettings settings, Metrics metrics, TextWriter log)
    {
        var warmUp = TimeSpan.FromSeconds(Math.Max(1, settings.Seconds / 5));
        var measured = TimeSpan.FromSeconds(settings.Seconds);
        var clock = Stopwatch.StartNew();
        long completed = 0;
        Dictionary<string, TimeSpan> cpuStart = [], cpuEnd = [];
        var sampler = Task.Run(async () =>
        {
            await Task.Delay(warmUp);
            cpuStart = cpu();
            await Task.Delay(measured);
            cpuEnd = cpu();
        });
        await Task.WhenAll(Enumerable.Range(0, settings.InFlight).Select(async _ =>
        {
            while (clock.Elapsed < warmUp + measured)
            {
                await chain(10);
                var now = clock.Elapsed;
                if (now >= warmUp && now < warmUp + measured)
                {
                    Interlocked.Increment(ref completed);
                }
            }
        }));
        await sampler;
        var stepsPerSecond = completed * 10 / measured.TotalSeconds;
        metrics.Add($"peers.{name}.steps_per_s", stepsPerSecond);
        await CpuSplit.AddAsync($"peers.{name}.cpu_ms_per_step", cpuStart, cpuEnd, completed * 10, measured.TotalSeconds, metrics, log);

        for (var i = 0; i < 10; i++)
        {
            await chain(1);
        }

        var start = new LatencyHistogram();
        var c1 = Stopwatch.StartNew();
        for (var i = 0; i < settings.Runs; i++)
        {
            start.RecordMs((await chain(1)).StartMs);
        }

        var rate = settings.Runs / c1.Elapsed.TotalSeconds;
        metrics.Add($"peers.{name}.c1.jobs_per_s", rate);
        metrics.Add($"peers.{name}.c1.start_p50_ms", start.PercentileMs(0.50));
        metrics.Add($"peers.{name}.c1.start_p99_ms", start.PercentileMs(0.99));
        await log.WriteLineAsync(string.Create(
            CultureInfo.InvariantCulture,
            $"  {name}: {settings.InFlight} ten-step chains in flight: {stepsPerSecond:F0} steps/s; one in flight: {rate:F0} jobs/s, enqueue→worker start p99 {start.PercentileMs(0.99):F2} ms"));
    }
}
