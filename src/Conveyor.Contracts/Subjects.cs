namespace Conveyor.Contracts;

/// <summary>
/// NATS subjects and JetStream stream names of the Conveyor protocol. They are the original Conveyor CI's, byte for
/// byte, so drivers written against it (Go, Python, Rust SDKs, or raw NATS) work unchanged.
/// </summary>
public static class Subjects
{
    /// <summary>Stream (Interest retention) holding work for drivers: <c>resources.&gt;</c>, <c>events.&gt;</c>, <c>drivers.&gt;</c>.</summary>
    public const string MessagesStream = "messages";

    /// <summary>Stream (WorkQueue retention) holding driver results and pipeline start events: <c>pipelines.&gt;</c>.</summary>
    public const string PipelineEngineStream = "pipeline-engine";

    /// <summary>Stream (WorkQueue retention) holding persisted driver log entries: <c>logs.&gt;</c>.</summary>
    public const string LogsEngineStream = "logs-engine";

    /// <summary>
    /// Stream (Limits retention) where the engine keeps normalized log entries, one subject per run:
    /// <c>conveyor.logs.{runid}</c>. Not part of the original protocol.
    /// </summary>
    public const string LogStoreStream = "conveyor-logs";

    /// <summary>
    /// Stream (Limits retention) of the CDEvents that runs emit, one subject per namespace:
    /// <c>conveyor.cdevents.{namespace}</c>. Not part of the original protocol.
    /// </summary>
    public const string EventsStream = "conveyor-events";

    /// <summary>
    /// Stream (Limits retention) of every run and step transition, one subject per run:
    /// <c>conveyor.runs.{namespace}.{pipeline}.{runId}</c>; read by the API's run events feeds. Not part of the original protocol.
    /// </summary>
    public const string RunEventsStream = "conveyor-runs";

    /// <summary>Subject filter for every run's transitions.</summary>
    public const string RunEventsWildcard = "conveyor.runs.>";

    /// <summary>Subject of one run's transitions.</summary>
    public static string RunEvents(string ns, string pipeline, Guid runId) => $"conveyor.runs.{ns}.{pipeline}.{runId:D}";

    /// <summary>Filter of the transitions of every run in <paramref name="ns"/>, or of one pipeline's runs.</summary>
    public static string RunEventsOf(string ns, string? pipeline = null) => pipeline is null ? $"conveyor.runs.{ns}.>" : $"conveyor.runs.{ns}.{pipeline}.*";

    /// <summary>Subject filter for every CDEvent.</summary>
    public const string CDEventsWildcard = "conveyor.cdevents.>";

    /// <summary>Subject filter for every stored (normalized) log entry.</summary>
    public const string LogStoreWildcard = "conveyor.logs.>";

    /// <summary>Subject on which drivers publish their results (<see cref="PipelineEvent"/> with event <c>driver.result</c>).</summary>
    public const string DriverResult = "pipelines.driver.result";

    /// <summary>Subject of the original's pipeline start event (<see cref="PipelineEvent"/> with event <c>create</c>).</summary>
    public const string PipelineInit = "pipelines.pipeline.init";

    /// <summary>Subject filter for everything the pipeline engine consumes.</summary>
    public const string PipelinesWildcard = "pipelines.>";

    /// <summary>Subject filter for every persisted log entry.</summary>
    public const string LogsWildcard = "logs.>";

    /// <summary>Subject filter for every live log entry (core NATS, not stored).</summary>
    public const string LiveLogsWildcard = "live.logs.>";

    /// <summary>Subjects captured by the <see cref="MessagesStream"/> stream.</summary>
    public static readonly IReadOnlyList<string> MessagesStreamSubjects = ["resources.>", "events.>", "drivers.>"];

    /// <summary>Where a resource without a pipeline is announced to every driver that listens for its type.</summary>
    public static string Resources(string resourceType) => "resources." + resourceType;

    /// <summary>Where one pipeline step is sent to the one driver that runs it.</summary>
    public static string DriverResources(string driver, string resourceType) => $"drivers.{driver}.resources.{resourceType}";

    /// <summary>Filter covering every pipeline step of any resource type sent to <paramref name="driver"/>.</summary>
    public static string DriverResourcesWildcard(string driver) => $"drivers.{driver}.resources.>";

    /// <summary>
    /// Core NATS subject (captured by no stream) on which the engine asks <paramref name="driver"/> to stop working on a
    /// step; body: <see cref="CancelMessage"/>.
    /// </summary>
    public static string Cancel(string driver) => "conveyor.cancel." + driver;

    /// <summary>
    /// Core NATS subject (captured by no stream) on which <paramref name="driver"/> tells the engine which attempts it is
    /// still working on; body: <see cref="HeartbeatMessage"/>.
    /// </summary>
    public static string Heartbeat(string driver) => "conveyor.heartbeat." + driver;

    /// <summary>Subject filter for every driver's heartbeats.</summary>
    public const string HeartbeatWildcard = "conveyor.heartbeat.*";

    /// <summary>
    /// Subject of driver results the engine gave up on (JetStream stream <see cref="DeadLetterStream"/>): the original
    /// message, with headers saying why.
    /// </summary>
    public const string DeadLetterResults = "conveyor.deadletter.results";

    /// <summary>Stream (Limits retention) of messages the engine could not process after its maximum deliveries.</summary>
    public const string DeadLetterStream = "conveyor-deadletter";

    /// <summary>Subject filter of the dead-letter stream.</summary>
    public const string DeadLetterWildcard = "conveyor.deadletter.>";

    /// <summary>Stream (Limits retention) of finished runs that retention deleted, as JSON, one subject per run.</summary>
    public const string ArchiveStream = "conveyor-archive";

    /// <summary>Subject filter of the archive stream.</summary>
    public const string ArchiveWildcard = "conveyor.archive.>";

    /// <summary>Subject of one archived run in <see cref="ArchiveStream"/>.</summary>
    public static string Archive(string ns, string runId) => $"conveyor.archive.{ns}.{runId}";

    /// <summary>Subject of the CDEvents (CloudEvents JSON) of runs in <paramref name="ns"/>.</summary>
    public static string CDEvents(string ns) => "conveyor.cdevents." + ns;

    /// <summary>Persisted (JetStream) log subject of a run.</summary>
    public static string Logs(string runId) => "logs." + runId;

    /// <summary>Subject of a run's normalized entries in the <see cref="LogStoreStream"/> stream.</summary>
    public static string LogStore(string runId) => "conveyor.logs." + runId;

    /// <summary>Live (core NATS) log subject of one driver in a run.</summary>
    public static string LiveLogs(string runId, string driver) => $"live.logs.{runId}.{driver}";

    /// <summary>
    /// Whether a NATS subject filter (which may contain <c>*</c> and a trailing <c>&gt;</c>) matches a concrete subject.
    /// </summary>
    public static bool FilterMatches(string filter, string subject)
    {
        ArgumentNullException.ThrowIfNull(filter);
        ArgumentNullException.ThrowIfNull(subject);
        var f = filter.AsSpan();
        var s = subject.AsSpan();
        while (true)
        {
            var fDot = f.IndexOf('.');
            var fToken = fDot < 0 ? f : f[..fDot];
            if (fToken is ">")
            {
                return s.Length > 0;
            }

            if (s.Length == 0)
            {
                return false;
            }

            var sDot = s.IndexOf('.');
            var sToken = sDot < 0 ? s : s[..sDot];
            if (!(fToken is "*" || fToken.SequenceEqual(sToken)))
            {
                return false;
            }

            if (fDot < 0 || sDot < 0)
            {
                return fDot < 0 && sDot < 0;
            }

            f = f[(fDot + 1)..];
            s = s[(sDot + 1)..];
        }
    }
}
