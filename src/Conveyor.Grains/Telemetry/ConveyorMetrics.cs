using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Conveyor.Contracts;

namespace Conveyor.Grains.Telemetry;

/// <summary>
/// The engine's instruments, on the meter <c>Conveyor</c> (created through <see cref="IMeterFactory"/>, so each host
/// has its own): <c>conveyor.runs.started</c>, <c>conveyor.runs.finished</c> (tag <c>status</c>),
/// <c>conveyor.step.duration</c>, <c>conveyor.dispatch.latency</c> and <c>conveyor.approval.wait</c> (seconds), and the gauges
/// <c>conveyor.steps.inflight</c> and <c>conveyor.queue.depth</c>. The gauges read what the runs active on this silo
/// last reported, so each silo reports its own share and a scrape costs one pass over its active runs.
/// </summary>
internal sealed class ConveyorMetrics : IDisposable
{
    private readonly Meter _meter;
    private readonly Counter<long> _runsStarted;
    private readonly Counter<long> _runsFinished;
    private readonly Histogram<double> _stepDuration;
    private readonly Histogram<double> _dispatchLatency;
    private readonly Histogram<double> _approvalWait;
    private readonly ConcurrentDictionary<Guid, RunGauge> _runs = new();

    // Second-scale bounds: OpenTelemetry's defaults are meant for milliseconds.
    private static readonly InstrumentAdvice<double> SecondsAdvice = new() { HistogramBucketBoundaries = MetricBuckets.Seconds };

    /// <summary>Creates the instruments.</summary>
    public ConveyorMetrics(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        _meter = meterFactory.Create(ConveyorTelemetry.Name);
        _runsStarted = _meter.CreateCounter<long>("conveyor.runs.started", "{run}", "Runs started (a retry of a run counts again).");
        _runsFinished = _meter.CreateCounter<long>("conveyor.runs.finished", "{run}", "Runs that ended, by status.");
        _stepDuration = _meter.CreateHistogram(
            "conveyor.step.duration",
            "s",
            "Time from a step attempt's dispatch decision to its end, by driver and status.",
            tags: null,
            advice: SecondsAdvice);
        _dispatchLatency = _meter.CreateHistogram(
            "conveyor.dispatch.latency",
            "s",
            "Time from a step attempt's dispatch decision until JetStream stored the message (includes waiting for the driver's consumer).",
            tags: null,
            advice: SecondsAdvice);
        _approvalWait = _meter.CreateHistogram(
            "conveyor.approval.wait",
            "s",
            "Time an approval gate waited for its decision, by decision (approved, rejected, timedout); its count is the number of decisions.",
            tags: null,
            advice: SecondsAdvice);
        _meter.CreateObservableGauge("conveyor.steps.inflight", SumInFlight, "{step}", "Step attempts dispatched or running, in runs active on this silo.");
        _meter.CreateObservableGauge("conveyor.queue.depth", SumQueued, "{run}", "Runs created but not started yet (status Pending, or Queued behind a concurrency limit), in runs active on this silo.");
    }

    /// <summary>A run started (or was retried).</summary>
    public void RunStarted(string ns, string pipeline) =>
        _runsStarted.Add(1, new TagList { { "namespace", ns }, { "pipeline", pipeline } });

    /// <summary>A run ended.</summary>
    public void RunFinished(string ns, string pipeline, RunStatus status) =>
        _runsFinished.Add(1, new TagList { { "namespace", ns }, { "pipeline", pipeline }, { "status", status.ToString() } });

    /// <summary>A step attempt ended.</summary>
    public void StepFinished(string driver, StepStatus status, TimeSpan duration) =>
        _stepDuration.Record(Math.Max(0, duration.TotalSeconds), new TagList { { "driver", driver }, { "status", status.ToString() } });

    /// <summary>An approval gate was decided (<c>approved</c>, <c>rejected</c>, <c>timedout</c>).</summary>
    public void ApprovalDecided(string ns, string pipeline, string decision, TimeSpan waited) =>
        _approvalWait.Record(Math.Max(0, waited.TotalSeconds), new TagList { { "namespace", ns }, { "pipeline", pipeline }, { "decision", decision } });

    /// <summary>JetStream stored a dispatch.</summary>
    public void Dispatched(string driver, TimeSpan latency) =>
        _dispatchLatency.Record(Math.Max(0, latency.TotalSeconds), new TagList { { "driver", driver } });

    /// <summary>What a run active on this silo holds now; a run that ended or deactivated reports <see cref="Forget"/>.</summary>
    public void Report(Guid runId, int inFlight, bool queued)
    {
        if (inFlight == 0 && !queued)
        {
            _runs.TryRemove(runId, out _);
            return;
        }

        _runs[runId] = new RunGauge(inFlight, queued);
    }

    /// <summary>The run is no longer active on this silo.</summary>
    public void Forget(Guid runId) => _runs.TryRemove(runId, out _);

    /// <inheritdoc />
    public void Dispose() => _meter.Dispose();

    private long SumInFlight()
    {
        long sum = 0;
        foreach (var run in _runs.Values)
        {
            sum += run.InFlight;
        }

        return sum;
    }

    private long SumQueued()
    {
        long sum = 0;
        foreach (var run in _runs.Values)
        {
            sum += run.Queued ? 1 : 0;
        }

        return sum;
    }

    private readonly record struct RunGauge(int InFlight, bool Queued);
}
