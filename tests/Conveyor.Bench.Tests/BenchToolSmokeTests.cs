using System.Text.Json;
using Conveyor.Bench;

namespace Conveyor.Bench.Tests;

/// <summary>
/// Keeps the benchmark tool working: its smoke mode starts the real silo and driver processes, runs every scenario
/// with tiny sizes, and must produce sane numbers. (The numbers themselves come from the tool, never from here.)
/// </summary>
public sealed class BenchToolSmokeTests
{
    [Fact]
    public async Task Smoke_run_of_every_scenario_produces_sane_numbers()
    {
        var dir = Directory.CreateTempSubdirectory("conveyor-bench-test-").FullName;
        try
        {
            var json = Path.Combine(dir, "all.json");
            var output = new StringWriter();
            var exit = await BenchTool.RunAsync(["all", "--smoke", "--json", json], output);
            Assert.True(exit == 0, output.ToString());

            var text = output.ToString();
            Assert.Contains("| b3.steps_per_s |", text, StringComparison.Ordinal);

            using var doc = JsonDocument.Parse(await File.ReadAllTextAsync(json));
            var medians = doc.RootElement.GetProperty("medians");
            double M(string name) => medians.GetProperty(name).GetDouble();
            foreach (var rate in new[] { "b1.closed.c1.runs_per_s", "b1.closed.c128.runs_per_s", "b1.open.runs_per_s", "b3.steps_per_s", "floor.c1.round_trips_per_s", "floor.saturated.round_trips_per_s" })
            {
                Assert.True(M(rate) > 0, $"{rate} = {M(rate)}");
            }

            // Latencies are positive and ordered: the driver receives a run's step before the run succeeds, and a
            // percentile never falls below a lower one.
            Assert.True(M("b1.closed.c1.driver_p50_ms") > 0);
            Assert.True(M("b1.closed.c1.succeeded_p50_ms") >= M("b1.closed.c1.driver_p50_ms"));
            Assert.True(M("b1.closed.c16.driver_p99_ms") >= M("b1.closed.c16.driver_p50_ms"));
            foreach (var shape in new[] { "chain", "fanout", "diamond" })
            {
                Assert.True(M($"b2.{shape}.makespan_ms") > 0, shape);
                Assert.True(double.IsFinite(M($"b2.{shape}.overhead_ms_per_node")), shape);
            }

            Assert.InRange(M("footprint.idle_rss_mb"), 10, 4096);
            Assert.True(M("footprint.cpu_s_per_1000_steps") > 0);
            Assert.True(M("b1.closed.c1.silo_cpu_ms_per_run") > 0);
            Assert.True(M("ratio.b3_steps_over_floor") > 0);
            // Every process on the machine's side of a step is charged: the silo, the servers it started, the drivers, the tool.
            Assert.True(M("b3.cpu_ms_per_step.silo") > 0);
            foreach (var process in new[] { "nats-server", "redis-server", "drivers", "tool" })
            {
                Assert.True(M($"b3.cpu_ms_per_step.{process}") >= 0, process);
            }

            Assert.True(M("b3.cpu_ms_per_step.all") >= M("b3.cpu_ms_per_step.silo") + M("b3.cpu_ms_per_step.nats-server"));
            Assert.True(M("floor.cpu_ms_per_round_trip.floor-worker") >= 0);
            Assert.True(double.IsFinite(M("floor.cpu_ms_per_round_trip.all")));
            Assert.Equal(1, doc.RootElement.GetProperty("passes").GetArrayLength());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task Smoke_run_of_the_hangfire_peer_measures_chains_and_one_in_flight_jobs()
    {
        var dir = Directory.CreateTempSubdirectory("conveyor-bench-test-").FullName;
        try
        {
            var json = Path.Combine(dir, "peers.json");
            var output = new StringWriter();
            var exit = await BenchTool.RunAsync(["peers", "--smoke", "--systems", "hangfire", "--json", json], output);
            Assert.True(exit == 0, output.ToString());

            using var doc = JsonDocument.Parse(await File.ReadAllTextAsync(json));
            var medians = doc.RootElement.GetProperty("medians");
            double M(string name) => medians.GetProperty(name).GetDouble();
            Assert.True(M("peers.hangfire.steps_per_s") > 0, output.ToString());
            Assert.True(M("peers.hangfire.c1.jobs_per_s") > 0, output.ToString());
            Assert.True(M("peers.hangfire.c1.start_p50_ms") > 0);
            Assert.True(M("peers.hangfire.c1.start_p99_ms") >= M("peers.hangfire.c1.start_p50_ms"));
            Assert.True(M("peers.hangfire.cpu_ms_per_step.hangfire-server") > 0, output.ToString());
            Assert.True(M("peers.hangfire.cpu_ms_per_step.redis-server") >= 0);
            Assert.True(M("peers.hangfire.cpu_ms_per_step.all") >= M("peers.hangfire.cpu_ms_per_step.hangfire-server"));
            Assert.Contains("appendfsync everysec", doc.RootElement.GetProperty("notes").GetProperty("durability.hangfire").GetString(), StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task Bullmq_peer_that_cannot_run_is_reported_as_skipped_in_the_output_and_the_json()
    {
        // A peers folder without the BullMQ script: the scenario must say why it skipped, not fail or stay silent.
        var dir = Directory.CreateTempSubdirectory("conveyor-bench-test-").FullName;
        Environment.SetEnvironmentVariable("CONVEYOR_BENCH_PEERS", dir);
        try
        {
            var json = Path.Combine(dir, "peers.json");
            var output = new StringWriter();
            var exit = await BenchTool.RunAsync(["peers", "--smoke", "--systems", "bullmq", "--json", json], output);
            Assert.True(exit == 0, output.ToString());
            Assert.Contains("bullmq: SKIPPED:", output.ToString(), StringComparison.Ordinal);

            using var doc = JsonDocument.Parse(await File.ReadAllTextAsync(json));
            Assert.StartsWith("skipped: ", doc.RootElement.GetProperty("notes").GetProperty("peers.bullmq").GetString(), StringComparison.Ordinal);
            Assert.False(doc.RootElement.GetProperty("medians").TryGetProperty("peers.bullmq.steps_per_s", out _));
        }
        finally
        {
            Environment.SetEnvironmentVariable("CONVEYOR_BENCH_PEERS", null);
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task Peers_with_an_unknown_system_or_fsync_print_usage_and_fail()
    {
        foreach (var args in new[] { new[] { "peers", "--smoke", "--systems", "sidekiq" }, ["peers", "--smoke", "--peer-fsync", "no"] })
        {
            var output = new StringWriter();
            Assert.Equal(2, await BenchTool.RunAsync(args, output));
            Assert.Contains("usage:", output.ToString(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Histogram_percentiles_are_within_one_percent()
    {
        var histogram = new LatencyHistogram();
        for (var i = 1; i <= 10_000; i++)
        {
            histogram.RecordMs(i / 10.0); // 0.1 ms … 1,000 ms, uniform
        }

        Assert.Equal(10_000, histogram.Count);
        Assert.InRange(histogram.PercentileMs(0.50), 500 * 0.99, 500 * 1.01);
        Assert.InRange(histogram.PercentileMs(0.99), 990 * 0.99, 990 * 1.01);
        Assert.InRange(histogram.PercentileMs(0.999), 999 * 0.99, 999 * 1.01);
        Assert.Equal(1000, histogram.MaxMs);
        Assert.Equal(0.1, histogram.PercentileMs(0.00001), 3);
    }

    [Fact]
    public async Task Unknown_scenario_prints_usage_and_fails()
    {
        var output = new StringWriter();
        var exit = await BenchTool.RunAsync(["nonsense"], output);
        Assert.Equal(2, exit);
        Assert.Contains("usage:", output.ToString(), StringComparison.Ordinal);
    }
}
