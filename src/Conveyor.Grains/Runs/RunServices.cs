using Conveyor.Grains.Events;
using Conveyor.Grains.Flow;
using Conveyor.Grains.Logs;
using Conveyor.Grains.Nats;
using Conveyor.Grains.Runs.Engine;
using Conveyor.Grains.Security;
using Conveyor.Grains.Telemetry;
using Microsoft.Extensions.Options;

namespace Conveyor.Grains.Runs;

/// <summary>
/// What a run grain does its I/O with, and the settings its state machine decides with (built once per silo, not
/// once per run).
/// </summary>
internal sealed class RunServices(
    IRunStore store,
    IRunIndex index,
    DriverDispatcher dispatcher,
    CDEventPublisher events,
    RunEventFeed feed,
    RunLauncher launcher,
    ConveyorMetrics metrics,
    SecretProtector secrets,
    TimeProvider time,
    IOptions<RunEngineOptions> engine,
    IOptions<FlowControlOptions> flow,
    IOptions<ConveyorLimitsOptions> limits,
    IRunArchive archive,
    ILogStore logs,
    IRunRetentionIndex retention)
{
    public IRunStore Store => store;

    public IRunIndex Index => index;

    public DriverDispatcher Dispatcher => dispatcher;

    public CDEventPublisher Events => events;

    /// <summary>Where run and step transitions go for the run events feeds.</summary>
    public RunEventFeed Feed => feed;

    /// <summary>Starts sub-pipeline steps' child runs.</summary>
    public RunLauncher Launcher => launcher;

    public ConveyorMetrics Metrics => metrics;

    public SecretProtector Secrets => secrets;

    public TimeProvider Time => time;

    /// <summary>Where a run goes before retention deletes it.</summary>
    public IRunArchive Archive => archive;

    /// <summary>The runs' logs (deleted with a run).</summary>
    public ILogStore Logs => logs;

    /// <summary>Which finished runs are due for deletion.</summary>
    public IRunRetentionIndex Retention => retention;

    /// <summary>Period of the durable reminder that wakes a run whose silo died.</summary>
    public TimeSpan KeepAlivePeriod { get; } = engine.Value.KeepAlivePeriod;

    /// <summary>How long a settled finished run stays resident.</summary>
    public TimeSpan FinishedRunResidence { get; } = engine.Value.FinishedRunResidence;

    /// <summary>The state machine's settings.</summary>
    public RunMachineOptions Machine { get; } = new()
    {
        Flow = flow.Value,
        DriverWaitInterval = dispatcher.Options.DriverWaitInterval,
        RepublishWindow = JetStreamTopology.MessagesDuplicateWindow - TimeSpan.FromSeconds(15),
        EmitEvents = events.Options.Enabled,
        EmitRunEvents = feed.Options.Enabled,
        EventsBaseUrl = events.Options.BaseUrl,
        DefaultAttemptTimeout = Positive(engine.Value.DefaultAttemptTimeout),
        HeartbeatLease = engine.Value.HeartbeatLease,
        MaxAttemptDuration = Positive(engine.Value.MaxAttemptDuration),
        MaxResultDataBytes = limits.Value.MaxResultDataBytes,
        Retention = new RetentionDefaults(Positive(engine.Value.RetentionPeriod) ?? TimeSpan.Zero, engine.Value.NamespaceRetention),
    };

    private static TimeSpan? Positive(TimeSpan value) => value > TimeSpan.Zero ? value : null;
}
