using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Conveyor.Client;
using Conveyor.Contracts;
using StackExchange.Redis;

namespace Conveyor.Bench;

/// <summary>
/// The retention soak: ten-step runs of one resource at a steady rate for S seconds on a silo whose finished runs are
/// kept R seconds. Samples Redis <c>used_memory</c> and <c>DBSIZE</c> over time: they grow for the first R seconds
/// (which gives the bytes and keys per finished run) and stay flat after, when retention deletes runs as fast as they
/// finish.
/// </summary>
internal static class RetentionScenario
{
    private const int Steps = 10;
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static async Task<int> RunAsync(int seconds, double rate, int retentionSeconds, string json, TextWriter log)
    {
        var redisPort = FreePort();
        var settings = new BenchSettings
        {
            Drivers = 1,
            SiloSettings =
            [
                $"Conveyor:LocalRedisPort={redisPort}",
                $"Conveyor:Runs:RetentionPeriod={TimeSpan.FromSeconds(retentionSeconds).ToString("c", CultureInfo.InvariantCulture)}",
                "Conveyor:Runs:RetentionSweepInterval=00:00:05",
            ],
        };
        await using var engine = await EngineUnderTest.StartAsync(settings, log);
        await using var redis = await ConnectionMultiplexer.ConnectAsync($"127.0.0.1:{redisPort},allowAdmin=true");
        var server = redis.GetServer(new IPEndPoint(IPAddress.Loopback, redisPort));

        await engine.CreatePipelineAsync("soak", [.. Enumerable.Range(1, Steps).Select(i => EngineUnderTest.Step($"s{i}", i == 1 ? [] : [$"s{i - 1}"]))]);
        var first = await engine.TriggerAsync("soak");
        await engine.Tracker.WaitAsync(first, Steps, TimeSpan.FromMinutes(2));
        var resource = (await engine.Client.GetRunAsync(Guid.Parse(first))).ResourceName;

        var baseline = await SampleAsync(server, TimeSpan.Zero, 0);
        await log.WriteLineAsync($"baseline: {baseline.UsedMemory} bytes, {baseline.Keys} keys; {rate} runs/s of {Steps} steps for {seconds} s, retention {retentionSeconds} s");
        var samples = new List<Sample> { baseline };
        var finished = 0;
        var failed = 0;
        var clock = Stopwatch.StartNew();
        using var stop = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    await Task.Delay(TimeSpan.FromSeconds(10), stop.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                var sample = await SampleAsync(server, clock.Elapsed, Volatile.Read(ref finished));
                lock (samples)
                {
                    samples.Add(sample);
                }

                await log.WriteLineAsync($"  t={sample.At.TotalSeconds,5:F0} s  finished {sample.Finished,6}  used_memory {sample.UsedMemory,10}  keys {sample.Keys,6}");
            }
        });

        // Open loop: arrivals on a fixed schedule, each run tracked to its end.
        var runs = new List<Task>();
        for (var i = 0; ; i++)
        {
            var due = TimeSpan.FromSeconds(i / rate);
            if (due >= TimeSpan.FromSeconds(seconds))
            {
                break;
            }

            if (due - clock.Elapsed is { } wait && wait > TimeSpan.FromMilliseconds(1))
            {
                await Task.Delay(wait);
            }

            runs.Add(Task.Run(async () =>
            {
                var run = await engine.Client.TriggerRunAsync("soak", resource);
                var done = await engine.Tracker.WaitAsync(run.Id.ToString(), Steps, TimeSpan.FromMinutes(5));
                if (done.Run.Status == RunStatus.Succeeded)
                {
                    Interlocked.Increment(ref finished);
                }
                else
                {
                    Interlocked.Increment(ref failed);
                }
            }));
        }

        await Task.WhenAll(runs);
        await stop.CancelAsync();
        await sampler;
        var end = await SampleAsync(server, clock.Elapsed, finished);
        samples.Add(end);

        // Bytes per finished run: the growth over the first retention period, before anything is deleted.
        var before = samples.Where(s => s.At > TimeSpan.Zero && s.At <= TimeSpan.FromSeconds(retentionSeconds)).LastOrDefault();
        var perRunBytes = before is { Finished: > 0 } ? (before.UsedMemory - baseline.UsedMemory) / (double)before.Finished : double.NaN;
        var perRunKeys = before is { Finished: > 0 } ? (before.Keys - baseline.Keys) / (double)before.Finished : double.NaN;
        // Flat after: the spread of memory and keys once two retention periods have passed.
        var steady = samples.Where(s => s.At >= TimeSpan.FromSeconds(2 * retentionSeconds)).ToList();
        var result = new
        {
            scenario = "retention",
            seconds,
            rate,
            retentionSeconds,
            steps = Steps,
            finished,
            failed,
            baseline = new { baseline.UsedMemory, baseline.Keys },
            bytesPerFinishedRun = perRunBytes,
            keysPerFinishedRun = perRunKeys,
            steadyUsedMemoryMin = steady.Count == 0 ? double.NaN : steady.Min(s => s.UsedMemory),
            steadyUsedMemoryMax = steady.Count == 0 ? double.NaN : steady.Max(s => s.UsedMemory),
            steadyKeysMin = steady.Count == 0 ? double.NaN : steady.Min(s => s.Keys),
            steadyKeysMax = steady.Count == 0 ? double.NaN : steady.Max(s => s.Keys),
            curve = samples.Select(s => new { t = Math.Round(s.At.TotalSeconds), s.Finished, s.UsedMemory, s.Keys }),
        };
        await log.WriteLineAsync($"finished {finished} runs ({failed} not succeeded); before retention: {perRunBytes:F0} bytes and {perRunKeys:F2} keys per finished run");
        if (steady.Count > 0)
        {
            await log.WriteLineAsync($"after {2 * retentionSeconds} s: used_memory {result.steadyUsedMemoryMin}–{result.steadyUsedMemoryMax} bytes, keys {result.steadyKeysMin}–{result.steadyKeysMax}");
        }

        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(json))!);
        await File.WriteAllTextAsync(json, JsonSerializer.Serialize(result, Indented));
        await log.WriteLineAsync($"results written to {json}");
        return failed == 0 ? 0 : 1;
    }

    private static async Task<Sample> SampleAsync(IServer server, TimeSpan at, int finished)
    {
        var info = await server.InfoAsync("memory");
        var used = long.Parse(info.SelectMany(g => g).First(p => p.Key == "used_memory").Value, CultureInfo.InvariantCulture);
        return new Sample(at, finished, used, await server.DatabaseSizeAsync());
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private sealed record Sample(TimeSpan At, int Finished, long UsedMemory, long Keys);
}
