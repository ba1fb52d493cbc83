using System.Diagnostics;
using System.Text.Json;
using Conveyor.Driver.Sdk;
using Conveyor.Grains.Telemetry;
using Conveyor.Testing;

namespace Conveyor.IntegrationTests;

/// <summary>Traces from the HTTP request through the run, the NATS dispatch and the SDK driver back to the engine; Prometheus metrics.</summary>
[Collection(OpsCollection.Name)]
public sealed class TelemetryTests(OpsFixture fx)
{
    private async Task<(string RunId, JsonElement Run)> RunPipelineAsync(params (string Id, int MaxAttempts)[] steps)
    {
        var driver = EngineFixture.Unique("drv");
        var type = await fx.DefinePipelineAsync(driver, steps);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await using var manager = await fx.StartDriverAsync(driver, type, cts.Token);
        var created = await fx.Host.PostJsonAsync("/resources", new { name = "web", resource = type, pipeline = type, spec = new { image = "web:1" } });
        var runId = created.GetProperty("runid").GetString()!;
        var run = await fx.Host.WaitForRunAsync(runId, TimeSpan.FromSeconds(30));
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
            TimeSpan.FromSeconds(15),
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
            TimeSpan.FromSeconds(15),
            "every instrument should be scraped");
        Assert.Contains(text.Split('\n'), l => l.StartsWith("conveyor_runs_finished_total{", StringComparison.Ordinal) && l.Contains("status=\"Failed\"", StringComparison.Ordinal));
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
