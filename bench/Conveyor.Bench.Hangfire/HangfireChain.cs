using System.Globalization;
using Hangfire;
using Hangfire.Redis.StackExchange;
using StackExchange.Redis;

namespace Conveyor.Bench.Hangfire;

/// <summary>
/// The Hangfire peer of the benchmark's ten-step chains: each step is a job that, when a worker starts it, enqueues
/// the next step's job; the last step publishes "chain enqueuedMicros startedMicros" on <see cref="DoneChannel"/>, so
/// the tool (another process) learns that the chain ended and how long its last job waited between enqueue and start.
/// </summary>
public static class HangfireChain
{
    /// <summary>Redis pub/sub channel of finished chains.</summary>
    public const string DoneChannel = "bench:hangfire:done";

    /// <summary>Key prefix of the Hangfire storage (its own, so nothing else in the server is touched).</summary>
    public const string Prefix = "{bench-hangfire}:";

    private static IBackgroundJobClient? s_jobs;
    private static ISubscriber? s_publisher;

    /// <summary>Hangfire's global settings; the tool and the worker call it alike so both write and read the same job format.</summary>
    public static void ConfigureGlobal() =>
        GlobalConfiguration.Configuration
            .SetDataCompatibilityLevel(CompatibilityLevel.Version_180)
            .UseSimpleAssemblyNameTypeSerializer()
            .UseRecommendedSerializerSettings();

    /// <summary>The benchmark's storage on a connection: a dedicated prefix, the package's defaults otherwise.</summary>
    public static RedisStorage Storage(IConnectionMultiplexer redis) => new(redis, new RedisStorageOptions { Prefix = Prefix });

    /// <summary>Enqueues the first step of a chain of <paramref name="steps"/> jobs.</summary>
    public static string Start(IBackgroundJobClient jobs, string chain, int steps)
    {
        ArgumentNullException.ThrowIfNull(jobs);
        var now = UnixMicros();
        return jobs.Enqueue(() => Step(chain, 1, steps, now));
    }

    /// <summary>One step of a chain: the job the worker runs.</summary>
    /// <param name="chain">The chain's id.</param>
    /// <param name="step">This step's number, from 1.</param>
    /// <param name="steps">The chain's length.</param>
    /// <param name="enqueuedMicros">When this job was enqueued, in Unix microseconds (one machine, one clock).</param>
    public static async Task Step(string chain, int step, int steps, long enqueuedMicros)
    {
        var started = UnixMicros();
        if (step < steps)
        {
            var jobs = s_jobs ?? throw new InvalidOperationException("the worker is not configured");
            var now = UnixMicros();
            jobs.Enqueue(() => Step(chain, step + 1, steps, now));
            return;
        }

        var publisher = s_publisher ?? throw new InvalidOperationException("the worker is not configured");
        await publisher.PublishAsync(
            RedisChannel.Literal(DoneChannel),
            string.Create(CultureInfo.InvariantCulture, $"{chain} {enqueuedMicros} {started}")).ConfigureAwait(false);
    }

    /// <summary>
    /// The worker process: a Hangfire server with <paramref name="workers"/> workers on the Redis storage at
    /// <paramref name="redis"/>. Prints "ready" once the server runs, and runs until <paramref name="cancellationToken"/>.
    /// </summary>
    public static async Task RunWorkerAsync(string redis, int workers, CancellationToken cancellationToken)
    {
        // Hangfire's workers block on synchronous storage calls. With the thread pool's default minimum (one thread per
        // core) this process starved: chains ended in bursts half a second apart while the pool grew one thread at a
        // time, and 64 chains in flight made a few dozen steps per second. A minimum above the worker count is the
        // tuning a Hangfire deployment with this many workers needs; measured, it is what lets it run at all.
        ThreadPool.GetMinThreads(out var minWorkers, out var minIo);
        ThreadPool.SetMinThreads(Math.Max(minWorkers, workers + 16), minIo);
        ConfigureGlobal();
        using var connection = await ConnectionMultiplexer.ConnectAsync(redis).ConfigureAwait(false);
        var storage = Storage(connection);
        s_jobs = new BackgroundJobClient(storage);
        s_publisher = connection.GetSubscriber();
        using (new BackgroundJobServer(new BackgroundJobServerOptions { WorkerCount = workers, ServerName = "bench-hangfire" }, storage))
        {
            Console.WriteLine("ready");
            try
            {
                await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
        }
    }

    /// <summary>Now, in Unix microseconds.</summary>
    public static long UnixMicros() => (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) / 10;
}
