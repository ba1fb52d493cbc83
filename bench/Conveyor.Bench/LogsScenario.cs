using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Conveyor.Driver.Sdk;
using Conveyor.Client;
using Conveyor.Contracts;

namespace Conveyor.Bench;

/// <summary>
/// N concurrent steps write log lines as fast as they can for S seconds while one client follows the run's log over
/// SSE. Reports ingested lines/s, end-to-end latency from the driver's <c>LogAsync</c> call to the SSE client, and loss.
/// </summary>
internal static class LogsScenario
{
    private sealed class FloodDriver(int seconds) : IDriver
    {
        private long _sent;

        public long Sent => Interlocked.Read(ref _sent);

        public string Name => "flood";

        public IReadOnlyCollection<string> Resources => ["bench"];

        public async Task<DriverResult> ReconcileAsync(DriverEvent driverEvent, DriverContext context, CancellationToken cancellationToken)
        {
            var until = Stopwatch.GetTimestamp() + (seconds * Stopwatch.Frequency);
            var n = 0;
            while (Stopwatch.GetTimestamp() < until)
            {
                // The line carries the moment LogAsync was called, read back by the SSE client.
                await context.Logger.LogAsync(Stopwatch.GetTimestamp().ToString(CultureInfo.InvariantCulture), cancellationToken: cancellationToken);
                Interlocked.Increment(ref _sent);
                n++;
            }

            return DriverResult.Ok($"{n} lines");
        }
    }

    public static async Task<LogsResult> RunAsync(int steps, int seconds)
    {
        await using var engine = await BenchEngine.StartAsync();
        using var http = new HttpClient { BaseAddress = engine.Address, Timeout = Timeout.InfiniteTimeSpan };
        var client = new ConveyorClient(http);
        await client.CreateResourceDefinitionAsync(new ResourceDefinition { Name = "bench", Schema = JsonSerializer.Deserialize<JsonElement>("{}") });
        await client.CreatePipelineAsync(new Pipeline
        {
            Name = "flood",
            Resource = "bench",
            Steps = Enumerable.Range(0, steps).Select(i => new PipelineStep { Id = $"s{i}", Driver = "flood", DependsOn = [] }).ToList(),
        });

        var driver = new FloodDriver(seconds);
        using var stop = new CancellationTokenSource();
        await using var manager = new DriverManager(driver, new DriverOptions { Name = "flood", Resources = ["bench"], NatsUrl = engine.NatsUrl, MaxConcurrency = steps, MaxAckPending = steps });
        var managerRun = manager.RunAsync(stop.Token);
        await manager.WaitUntilReadyAsync();

        var clock = Stopwatch.StartNew();
        var created = await client.CreateResourceAsync(new CreateResourceRequest
        {
            Name = "r1",
            ResourceType = "bench",
            Pipeline = "flood",
            Spec = JsonSerializer.Deserialize<JsonElement>("{}"),
        });
        var latencies = new List<double>(capacity: 1 << 20);
        long received = 0;
        var seen = new HashSet<ulong>();
        var duplicates = 0L;
        await foreach (var line in client.FollowRunLogsAsync(created.RunId.ToString()))
        {
            var now = Stopwatch.GetTimestamp();
            if (!seen.Add(line.Seq))
            {
                duplicates++;
                continue;
            }

            received++;
            if (long.TryParse(line.Message, NumberStyles.None, CultureInfo.InvariantCulture, out var at))
            {
                latencies.Add((now - at) * 1000.0 / Stopwatch.Frequency);
            }
        }

        clock.Stop();
        var run = await client.GetRunAsync(created.RunId);
        await stop.CancelAsync();
        await managerRun;
        latencies.Sort();
        double P(double q) => latencies.Count == 0 ? double.NaN : latencies[Math.Min(latencies.Count - 1, (int)(q * latencies.Count))];
        return new LogsResult(
            Steps: steps,
            Seconds: seconds,
            RunStatus: run.Status.ToString(),
            Sent: driver.Sent,
            Received: received,
            Duplicates: duplicates,
            IngestPerSecond: driver.Sent / (double)seconds,
            P50Ms: P(0.50),
            P99Ms: P(0.99),
            P999Ms: P(0.999),
            MaxMs: latencies.Count == 0 ? double.NaN : latencies[^1],
            WallSeconds: clock.Elapsed.TotalSeconds);
    }
}

/// <summary>Outcome of the logs scenario.</summary>
internal sealed record LogsResult(
    int Steps,
    int Seconds,
    string RunStatus,
    long Sent,
    long Received,
    long Duplicates,
    double IngestPerSecond,
    double P50Ms,
    double P99Ms,
    double P999Ms,
    double MaxMs,
    double WallSeconds)
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public long Lost => Sent - Received;

    public void Print(TextWriter output)
    {
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"logs: {Steps} concurrent steps x {Seconds} s, run {RunStatus}"));
        output.WriteLine("| lines sent | lines received | lost | duplicates | ingested lines/s | p50 ms | p99 ms | p99.9 ms | max ms |");
        output.WriteLine("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {Sent} | {Received} | {Lost} | {Duplicates} | {IngestPerSecond:F0} | {P50Ms:F1} | {P99Ms:F1} | {P999Ms:F1} | {MaxMs:F1} |"));
    }

    public async Task WriteJsonAsync(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        await File.WriteAllTextAsync(path, JsonSerializer.Serialize(this, Indented));
    }
}
