using System.Globalization;
using System.Text.Json;
using Conveyor.Contracts;
using Microsoft.Extensions.Logging;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Conveyor.Driver.Sdk;

/// <summary>
/// Writes to a run's log. Each entry is a <see cref="LogEntry"/> stamped with the run id, driver, pipeline and an
/// RFC 3339 UTC timestamp, labelled with the step and attempt; it is published to JetStream <c>logs.{runid}</c>
/// (persisted by the engine; the publish waits for JetStream's acknowledgement) and then, as identical bytes, to core
/// NATS <c>live.logs.{runid}.{driver}</c> (live viewers), like the original Go SDK.
/// </summary>
public sealed partial class DriverLogger
{
    private const string TimestampFormat = "yyyy-MM-dd'T'HH:mm:ss.FFFFFFF'Z'";

    private readonly Func<LogEntry, byte[], CancellationToken, Task> _publish;
    private readonly TimeProvider _timeProvider;
    private readonly IReadOnlyDictionary<string, string> _boundLabels;
    private readonly ILogger _diagnostics;
    private readonly Lock _queueGate = new();
    private Task _queueTail = Task.CompletedTask;

    internal DriverLogger(
        INatsConnection connection,
        INatsJSContext jetStream,
        TimeProvider timeProvider,
        string runId,
        string driver,
        string pipeline,
        IReadOnlyDictionary<string, string> boundLabels,
        ILogger diagnostics)
        : this(runId, driver, pipeline, boundLabels, timeProvider, diagnostics, (_, body, ct) => PublishToNatsAsync(connection, jetStream, runId, driver, body, ct))
    {
    }

    private DriverLogger(
        string runId,
        string driver,
        string pipeline,
        IReadOnlyDictionary<string, string> boundLabels,
        TimeProvider timeProvider,
        ILogger diagnostics,
        Func<LogEntry, byte[], CancellationToken, Task> publish)
    {
        _publish = publish;
        _timeProvider = timeProvider;
        RunId = runId;
        Driver = driver;
        Pipeline = pipeline;
        _boundLabels = boundLabels;
        _diagnostics = diagnostics;
    }

    /// <summary>Run the entries belong to.</summary>
    public string RunId { get; }

    /// <summary>Driver that writes the entries.</summary>
    public string Driver { get; }

    /// <summary>Pipeline of the resource, or empty when the resource has none.</summary>
    public string Pipeline { get; }

    /// <summary>Labels put on every entry (<c>step</c> and <c>attempt</c> when the event is a pipeline step).</summary>
    public IReadOnlyDictionary<string, string> BoundLabels => _boundLabels;

    /// <summary>
    /// Publishes one entry and returns once JetStream has stored it and the live copy is sent.
    /// </summary>
    /// <param name="message">The log line.</param>
    /// <param name="labels">Extra labels; they cannot replace the bound <c>step</c> and <c>attempt</c> labels.</param>
    /// <param name="cancellationToken">Cancels the publish.</param>
    /// <exception cref="NatsJSApiException">JetStream rejected the entry (for example, no stream captures <c>logs.&gt;</c>).</exception>
    public async Task LogAsync(string message, IReadOnlyDictionary<string, string>? labels = null, CancellationToken cancellationToken = default)
    {
        var entry = CreateEntry(message, labels);
        await _publish(entry, Serialize(entry), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// A logger that hands its entries to <paramref name="sink"/> instead of NATS: for unit tests of a driver's
    /// reconcile, or for running a driver outside a <see cref="DriverManager"/>.
    /// </summary>
    /// <param name="runId">Run id stamped on every entry.</param>
    /// <param name="driver">Driver name stamped on every entry.</param>
    /// <param name="sink">Receives each entry; the returned task is awaited by <see cref="LogAsync"/>.</param>
    /// <param name="boundLabels">Labels put on every entry.</param>
    /// <param name="pipeline">Pipeline name stamped on every entry.</param>
    /// <param name="timeProvider">Clock for the timestamps.</param>
    public static DriverLogger Create(
        string runId,
        string driver,
        Func<LogEntry, CancellationToken, Task> sink,
        IReadOnlyDictionary<string, string>? boundLabels = null,
        string pipeline = "",
        TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(sink);
        return new DriverLogger(
            runId,
            driver,
            pipeline,
            boundLabels ?? new Dictionary<string, string>(),
            timeProvider ?? TimeProvider.System,
            Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance,
            (entry, _, ct) => sink(entry, ct));
    }

    private static async Task PublishToNatsAsync(INatsConnection connection, INatsJSContext jetStream, string runId, string driver, byte[] body, CancellationToken cancellationToken)
    {
        var ack = await jetStream.PublishAsync(Subjects.Logs(runId), body, cancellationToken: cancellationToken).ConfigureAwait(false);
        ack.EnsureSuccess();
        await connection.PublishAsync(Subjects.LiveLogs(runId, driver), body, cancellationToken: cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// An <see cref="ILogger"/> whose records land in the run log with a <c>level</c> label. Records are published in
    /// order in the background; the driver manager waits for them (<see cref="FlushAsync"/>) before it publishes the
    /// reconcile's result. Publish failures are reported to the driver's own diagnostics logger, never thrown.
    /// </summary>
    /// <param name="minimumLevel">Records below this level are ignored.</param>
    public ILogger AsLogger(LogLevel minimumLevel = LogLevel.Information) => new RunLogLogger(this, minimumLevel);

    /// <summary>Waits until every record written through <see cref="AsLogger"/> so far has been published (or has failed).</summary>
    public Task FlushAsync()
    {
        lock (_queueGate)
        {
            return _queueTail;
        }
    }

    internal LogEntry CreateEntry(string message, IReadOnlyDictionary<string, string>? labels)
    {
        Dictionary<string, string>? merged = null;
        if (labels is { Count: > 0 } || _boundLabels.Count > 0)
        {
            merged = new Dictionary<string, string>(StringComparer.Ordinal);
            if (labels is not null)
            {
                foreach (var (key, value) in labels)
                {
                    merged[key] = value;
                }
            }

            foreach (var (key, value) in _boundLabels)
            {
                merged[key] = value;
            }
        }

        return new LogEntry
        {
            RunId = RunId,
            Driver = Driver,
            Pipeline = Pipeline,
            Timestamp = FormatTimestamp(_timeProvider.GetUtcNow()),
            Message = message ?? "",
            Labels = merged,
        };
    }

    internal static string FormatTimestamp(DateTimeOffset time) =>
        time.UtcDateTime.ToString(TimestampFormat, CultureInfo.InvariantCulture);

    internal static byte[] Serialize(LogEntry entry) => JsonSerializer.SerializeToUtf8Bytes(entry, ConveyorJson.Context.LogEntry);

    private void Enqueue(string message, IReadOnlyDictionary<string, string> labels)
    {
        lock (_queueGate)
        {
            _queueTail = PublishAfterAsync(_queueTail, message, labels);
        }
    }

    private async Task PublishAfterAsync(Task previous, string message, IReadOnlyDictionary<string, string> labels)
    {
        // previous never faults: failures are caught below.
        await previous.ConfigureAwait(false);
        try
        {
            await LogAsync(message, labels).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            LogPublishFailed(_diagnostics, ex, RunId, Driver);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Publishing a log entry of run {RunId} for driver {Driver} failed")]
    private static partial void LogPublishFailed(ILogger logger, Exception exception, string runId, string driver);

    private sealed class RunLogLogger(DriverLogger owner, LogLevel minimumLevel) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None && logLevel >= minimumLevel;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            ArgumentNullException.ThrowIfNull(formatter);
            if (!IsEnabled(logLevel))
            {
                return;
            }

            var message = formatter(state, exception);
            if (exception is not null)
            {
                message = string.IsNullOrEmpty(message) ? exception.ToString() : message + Environment.NewLine + exception;
            }

            owner.Enqueue(message, new Dictionary<string, string>(StringComparer.Ordinal) { ["level"] = LevelName(logLevel) });
        }

        private static string LevelName(LogLevel level) => level switch
        {
            LogLevel.Trace => "trace",
            LogLevel.Debug => "debug",
            LogLevel.Information => "info",
            LogLevel.Warning => "warning",
            LogLevel.Error => "error",
            LogLevel.Critical => "critical",
            _ => "none",
        };
    }
}
