using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Conveyor.Driver.Sdk;
using Conveyor.Grains.Telemetry;
using Conveyor.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Conveyor.IntegrationTests;

/// <summary>
/// Traces from the HTTP request through the run, the NATS dispatch and the SDK driver back to the engine; Prometheus
/// metrics and their values; the optional OTLP exporter.
/// </summary>
[Collection(OpsCollection.Name)]
public sealed partial class TelemetryTests(OpsFixture fx)
{
    private static readonly TimeSpan ScrapeTimeout = Deadlines.Event;

    /// <summary>The samples of one Prometheus scrape: metric name, labels and value of every line that is not a comment.</summary>
    private sealed record Sample(string Name, Dictionary<string, string> Labels, double Value);

    private async Task<List<Sample>> ScrapeAsync()
    {
        using var response = await fx.Host.Http.GetAsync("/metrics");
        Assert.True(response.IsSuccessStatusCode, $"GET /metrics: {(int)response.StatusCode}");
        var samples = new List<Sample>();
        foreach (var line in (await response.Content.ReadAsStringAsync()).Split('\n'))
        {
            var m = SampleLine().Match(line);
            if (!m.Success)
            {
                continue;
            }

            var labels = LabelPair().Matches(m.Groups["labels"].Value).ToDictionary(l => l.Groups["k"].Value, l => Regex.Unescape(l.Groups["v"].Value));
            samples.Add(new Sample(m.Groups["name"].Value, labels, double.Parse(m.Groups["value"].Value, CultureInfo.InvariantCulture)));
        }

        return samples;
    }

    /// <summary>The value of the one sample of <paramref name="name"/> that has these labels (among others); null when there is none.</summary>
    private static double? Value(List<Sample> samples, string name, params (string Key, string Value)[] labels)
    {
        var matching = samples.Where(s => s.Name == name && labels.All(l => s.Labels.GetValueOrDefault(l.Key) == l.Value)).ToList();
        Assert.True(matching.Count <= 1, $"{name} {string.Join(",", labels)} matches {matching.Count} series");
        return matching.Count == 0 ? null : matching[0].Value;
    }

    [GeneratedRegex("^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\\{(?<labels>.*)\\})? (?<value>[^ ]+)( [0-9]+)?$")]
    private static partial Regex SampleLine();

    [GeneratedRegex("(?<k>[a-zA-Z_][a-zA-Z0-9_]*)=\"(?<v>(?:[^\"\\\\]|\\\\.)*)\"")]
    private static partial Regex LabelPair();

    private async Task<(string RunId, JsonElement Run)> RunPipelineAsync(params (string Id, int MaxAttempts)[] steps)
    {
        var driver = EngineFixture.Unique("drv");
        var type = await fx.DefinePipelineAsync(driver, steps);
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await using var manager = await fx.StartDriverAsync(driver, type, cts.Token);
        var created = await fx.Host.PostJsonAsync("/resources", new { name = "web", resource = type, pipeline = type, spec = new { image = "web:1" } });
        var runId = created.GetProperty("runid").GetString()!;
        var run = await fx.Host.WaitForRunAsync(runId, Deadlines.Event);
        await cts.CancelAsync();
        return (runId, run);
    }

    [Fact]
    public async Task One_trace_runs_from_the_http_request_through_dispatch_and_driver_back_to_the_engine()
    {
        var (runId, run) = await RunPipelineAsync(("build", 1), ("test", 1));
        Assert.Equal("Succeeded", run.GetProperty("status").GetString());

        Activity? start = null;
        List<Activity> trace = [];
        await Eventually.TrueAsync(
            () =>
            {
                start = fx.Spans.Snapshot().Find(a => a.OperationName == ConveyorTelemetry.RunStartActivity && (string?)a.GetTagItem("conveyor.run.id") == runId);
                if (start is null)
                {
                    return false;
                }

                trace = fx.Spans.Snapshot().FindAll(a => a.TraceId == start.TraceId);
                // Two steps: two dispatches, two reconciles, two applied results.
                return trace.Count(a => a.OperationName == ConveyorTelemetry.ResultApplyActivity) == 2;
            },
            Deadlines.Event,
            "the run's spans should be exported");

        var byId = trace.ToDictionary(a => a.SpanId);
        var http = Assert.Single(trace, a => a.Kind == ActivityKind.Server && a.Source.Name == "Microsoft.AspNetCore");
        Assert.Equal("POST", http.GetTagItem("http.request.method"));
        Assert.True(IsAncestor(http, start!, byId), "the run's start is under the HTTP request that created it");

        // A dispatch tried before the engine saw the driver's consumer is recorded too, marked as waiting.
        var dispatches = trace
            .Where(a => a.OperationName == ConveyorTelemetry.DispatchActivity && a.GetTagItem("conveyor.waiting_for_driver") is null)
            .OrderBy(a => a.StartTimeUtc)
            .ToList();
        var reconciles = trace.Where(a => a.OperationName == DriverTelemetry.ReconcileActivity).OrderBy(a => a.StartTimeUtc).ToList();
        var applies = trace.Where(a => a.OperationName == ConveyorTelemetry.ResultApplyActivity).OrderBy(a => a.StartTimeUtc).ToList();
        Assert.Equal(["build", "test"], dispatches.Select(d => (string?)d.GetTagItem("conveyor.step")));
        Assert.Equal(["build", "test"], reconciles.Select(d => (string?)d.GetTagItem("conveyor.step")));
        Assert.All(dispatches, d => Assert.Equal(ActivityKind.Producer, d.Kind));

        // build: run start -> dispatch -> driver reconcile (from the NATS traceparent) -> result apply (from the result's traceparent)
        Assert.True(IsAncestor(start!, dispatches[0], byId), "the first dispatch is under the run's start");
        Assert.Equal(dispatches[0].SpanId, reconciles[0].ParentSpanId);
        Assert.Equal(reconciles[0].SpanId, applies[0].ParentSpanId);
        // test: dispatched while the build's result was applied, so the chain continues
        Assert.True(IsAncestor(applies[0], dispatches[1], byId), "the second dispatch is under the first result's handling");
        Assert.Equal(dispatches[1].SpanId, reconciles[1].ParentSpanId);
        Assert.Equal(reconciles[1].SpanId, applies[1].ParentSpanId);
        Assert.All(applies, a => Assert.Equal("Applied", a.GetTagItem("conveyor.result.outcome")));
    }

    [Fact]
    public async Task Metrics_endpoint_exposes_every_named_instrument_in_prometheus_text()
    {
        var (_, ok) = await RunPipelineAsync(("build", 1));
        Assert.Equal("Succeeded", ok.GetProperty("status").GetString());
        var (_, failed) = await RunPipelineAsync(("fail-build", 1));
        Assert.Equal("Failed", failed.GetProperty("status").GetString());

        string text = "";
        string[] expected =
        [
            "# TYPE conveyor_runs_started_total counter",
            "# TYPE conveyor_runs_finished_total counter",
            "status=\"Succeeded\"",
            "status=\"Failed\"",
            "# TYPE conveyor_step_duration_seconds histogram",
            "conveyor_step_duration_seconds_bucket{",
            "# TYPE conveyor_dispatch_latency_seconds histogram",
            "conveyor_dispatch_latency_seconds_bucket{",
            "# TYPE conveyor_steps_inflight gauge",
            "# TYPE conveyor_queue_depth gauge",
            "# TYPE conveyor_driver_reconcile_duration_seconds histogram",
        ];
        await Eventually.TrueAsync(
            async () =>
            {
                using var response = await fx.Host.Http.GetAsync("/metrics");
                text = await response.Content.ReadAsStringAsync();
                return response.IsSuccessStatusCode && expected.All(e => text.Contains(e, StringComparison.Ordinal));
            },
            Deadlines.Event,
            "every instrument should be scraped");
        Assert.Contains(text.Split('\n'), l => l.StartsWith("conveyor_runs_finished_total{", StringComparison.Ordinal) && l.Contains("status=\"Failed\"", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Counters_and_histograms_count_each_run_step_and_dispatch_by_status_including_a_retry()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var okDriver = EngineFixture.Unique("drv");
        var ok = await fx.DefinePipelineAsync(okDriver, ("build", 1));
        var badDriver = EngineFixture.Unique("drv");
        var bad = await fx.DefinePipelineAsync(badDriver, ("fail-build", 1));
        await using var okManager = await fx.StartDriverAsync(okDriver, ok, cts.Token);
        await using var badManager = await fx.StartDriverAsync(badDriver, bad, cts.Token);

        var okRun = (await fx.Host.PostJsonAsync("/resources", new { name = "web", resource = ok, pipeline = ok, spec = new { image = "web:1" } })).GetProperty("runid").GetString()!;
        var badRun = (await fx.Host.PostJsonAsync("/resources", new { name = "web", resource = bad, pipeline = bad, spec = new { image = "web:1" } })).GetProperty("runid").GetString()!;
        Assert.Equal("Succeeded", (await fx.Host.WaitForRunAsync(okRun, Deadlines.Event)).GetProperty("status").GetString());
        Assert.Equal("Failed", (await fx.Host.WaitForRunAsync(badRun, Deadlines.Event)).GetProperty("status").GetString());
        await fx.Host.PostJsonAsync($"/runs/{badRun}/retry", new { }, 200);
        await Eventually.TrueAsync(
            async () => (await fx.Host.GetJsonAsync($"/runs/{badRun}")) is var r && r.GetProperty("status").GetString() == "Failed" && r.GetProperty("runAttempt").GetInt32() == 2,
            Deadlines.Event,
            "the retried run fails again");

        List<Sample> samples = [];
        await Eventually.TrueAsync(
            async () => Value(samples = await ScrapeAsync(), "conveyor_runs_finished_total", ("pipeline", bad), ("status", "Failed")) == 2,
            ScrapeTimeout,
            $"the retried run's second end is counted: {string.Join("; ", samples.Where(x => x.Labels.GetValueOrDefault("pipeline") is { } p && (p == ok || p == bad)).Select(x => $"{x.Name}{{{string.Join(",", x.Labels.Select(l => $"{l.Key}={l.Value}"))}}} {x.Value}"))}");

        // Each pipeline is this test's own, so its series hold exactly this test's runs.
        Assert.Equal(1, Value(samples, "conveyor_runs_started_total", ("namespace", "default"), ("pipeline", ok)));
        Assert.Equal(1, Value(samples, "conveyor_runs_finished_total", ("namespace", "default"), ("pipeline", ok), ("status", "Succeeded")));
        Assert.Null(Value(samples, "conveyor_runs_finished_total", ("pipeline", ok), ("status", "Failed")));
        Assert.Equal(2, Value(samples, "conveyor_runs_started_total", ("pipeline", bad)));
        Assert.Null(Value(samples, "conveyor_runs_finished_total", ("pipeline", bad), ("status", "Succeeded")));

        Assert.Equal(1, Value(samples, "conveyor_step_duration_seconds_count", ("driver", okDriver), ("status", "Succeeded")));
        Assert.True(Value(samples, "conveyor_step_duration_seconds_sum", ("driver", okDriver), ("status", "Succeeded")) > 0);
        Assert.Equal(1, Value(samples, "conveyor_step_duration_seconds_bucket", ("driver", okDriver), ("status", "Succeeded"), ("le", "+Inf")));
        Assert.Equal(2, Value(samples, "conveyor_step_duration_seconds_count", ("driver", badDriver), ("status", "Failed")));
        Assert.Equal(1, Value(samples, "conveyor_dispatch_latency_seconds_count", ("driver", okDriver)));
        Assert.Equal(2, Value(samples, "conveyor_dispatch_latency_seconds_count", ("driver", badDriver)));
        Assert.Equal(1, Value(samples, "conveyor_driver_reconcile_duration_seconds_count", ("driver", okDriver), ("success", "true")));
        Assert.Equal(2, Value(samples, "conveyor_driver_reconcile_duration_seconds_count", ("driver", badDriver), ("success", "false")));
    }

    [Fact]
    public async Task Gauges_show_a_queued_run_and_a_running_step_and_return_to_zero_when_they_end()
    {
        var (type, driver) = await Flow.PipelineAsync(fx.Host, fx.Nats.Url, new { concurrency = 1 });
        await using var _ = driver;
        var running = await Flow.TriggerAsync(fx.Host, type);
        await Flow.WaitForStatusAsync(fx.Host, running, "Running");
        await Eventually.TrueAsync(() => !driver.Raw.Received.IsEmpty, Flow.Timeout, "the first run's step reaches its driver");
        var queued = await Flow.TriggerAsync(fx.Host, type);
        Assert.Equal("Queued", (await fx.Host.GetJsonAsync($"/runs/{queued}")).GetProperty("status").GetString());

        // Nothing else runs in this collection meanwhile: the gauges hold exactly these two runs.
        List<Sample> samples = [];
        await Eventually.TrueAsync(
            async () => Value(samples = await ScrapeAsync(), "conveyor_queue_depth") == 1 && Value(samples, "conveyor_steps_inflight") == 1,
            ScrapeTimeout,
            $"one run queued and one step in flight: queue depth {Value(samples, "conveyor_queue_depth")}, in flight {Value(samples, "conveyor_steps_inflight")}");

        driver.Open();
        await fx.Host.WaitForRunAsync(running, Flow.Timeout);
        await fx.Host.WaitForRunAsync(queued, Flow.Timeout);
        await Eventually.TrueAsync(
            async () => Value(samples = await ScrapeAsync(), "conveyor_queue_depth") == 0 && Value(samples, "conveyor_steps_inflight") == 0,
            ScrapeTimeout,
            $"nothing queued or in flight: queue depth {Value(samples, "conveyor_queue_depth")}, in flight {Value(samples, "conveyor_steps_inflight")}");
    }

    [Fact]
    public async Task The_otlp_exporter_posts_traces_and_metrics_over_http_and_a_second_host_in_the_process_reports_only_its_own()
    {
        var requests = new ConcurrentQueue<(string Path, string? ContentType, byte[] Body)>();
        var collector = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Testing", ContentRootPath = AppContext.BaseDirectory });
        collector.Logging.ClearProviders();
        collector.WebHost.UseUrls("http://127.0.0.1:0");
        await using var otlp = collector.Build();
        otlp.Run(async context =>
        {
            // Every request is recorded, whatever its path, so a wrong path shows up in the assertions.
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            requests.Enqueue(($"{context.Request.Method} {context.Request.Path}", context.Request.ContentType, body.ToArray()));
            context.Response.ContentType = "application/x-protobuf";
        });
        await otlp.StartAsync();
        var endpoint = otlp.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First() + "/otlp";

        await using var nats = await NatsServerProcess.StartNewAsync();
        await using var redis = await RedisServerProcess.StartNewAsync();
        await using var host = await ConveyorTestHost.StartAsync(nats.Url, redis.ConnectionString, "otlp-" + Guid.NewGuid().ToString("N")[..8], new Dictionary<string, string?>
        {
            ["Conveyor:Telemetry:OtlpEndpoint"] = endpoint,
            ["Conveyor:Telemetry:OtlpProtocol"] = "HttpProtobuf",
            ["Conveyor:Telemetry:OtlpMetricsInterval"] = "00:00:00.500",
            ["Conveyor:Telemetry:ServiceName"] = "conveyor-otlp-test",
        });
        // A run on each host, both with meters named Conveyor in this one process. The second host's has no driver, so
        // it stays Running with its step in flight. A request from here starts a trace of its own (no ambient parent).
        Activity.Current = null;
        var mine = EngineFixture.Unique("otlp");
        await host.PostJsonAsync("/resource-definitions", new { name = mine, version = "1", schema = new { type = "object" } });
        await host.PostJsonAsync("/pipelines", new { name = mine, resource = mine, steps = new[] { new { id = "build", driver = EngineFixture.Unique("nobody") } } });
        var otlpRun = (await host.PostJsonAsync("/resources", new { name = "web", resource = mine, pipeline = mine, spec = new { } })).GetProperty("runid").GetString()!;
        var (opsRun, _) = await RunPipelineAsync(("build", 1));
        var theirs = (await fx.Host.GetJsonAsync($"/runs/{opsRun}")).GetProperty("pipeline").GetString()!;

        static bool Has(byte[] body, string text) => body.AsSpan().IndexOf(Encoding.UTF8.GetBytes(text)) >= 0;
        await Eventually.TrueAsync(
            () => requests.Any(r => r.Path == "POST /otlp/v1/metrics" && Has(r.Body, "conveyor.runs.started") && Has(r.Body, mine))
                && requests.Any(r => r.Path == "POST /otlp/v1/traces" && Has(r.Body, ConveyorTelemetry.RunStartActivity) && Has(r.Body, otlpRun)),
            Deadlines.Event,
            $"OTLP/HTTP requests with the run's metrics and its trace (got {string.Join(", ", requests.GroupBy(r => r.Path).Select(g => $"{g.Key} x{g.Count()} {g.Sum(r => r.Body.Length)} bytes"))})");
        Assert.All(requests, r => Assert.Equal("application/x-protobuf", r.ContentType));
        Assert.All(requests, r => Assert.True(Has(r.Body, "conveyor-otlp-test"), $"{r.Path} carries the service name"));
        Assert.All(requests, r => Assert.Contains(r.Path, new[] { "POST /otlp/v1/metrics", "POST /otlp/v1/traces" }));

        // Each host's metrics hold its own runs only, in Prometheus and over OTLP.
        await Eventually.TrueAsync(
            async () => Value(await ScrapeAsync(), "conveyor_runs_finished_total", ("pipeline", theirs), ("status", "Succeeded")) == 1,
            ScrapeTimeout,
            "the fixture's host counts its run");
        Assert.DoesNotContain(mine, await fx.Host.Http.GetStringAsync("/metrics"), StringComparison.Ordinal);
        var other = await host.Http.GetStringAsync("/metrics");
        Assert.Contains(mine, other, StringComparison.Ordinal);
        Assert.DoesNotContain(theirs, other, StringComparison.Ordinal);
        Assert.DoesNotContain(requests, r => r.Path == "POST /otlp/v1/metrics" && Has(r.Body, theirs));
        await host.PostJsonAsync($"/runs/{otlpRun}/cancel", new { reason = "test over" }, 200);
    }

    private static bool IsAncestor(Activity ancestor, Activity activity, Dictionary<ActivitySpanId, Activity> byId)
    {
        var current = activity;
        while (current.ParentSpanId != default)
        {
            if (current.ParentSpanId == ancestor.SpanId)
            {
                return true;
            }

            if (!byId.TryGetValue(current.ParentSpanId, out var parent))
            {
                return false;
            }

            current = parent;
        }

        return false;
    }
}
