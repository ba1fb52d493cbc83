using System.Text;
using System.Text.Json;
using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;

namespace Conveyor.Grains.Events;

/// <summary>
/// Builds CDEvents (spec 0.4.1, core events) as CloudEvents 1.0 in structured JSON: the CloudEvent's <c>data</c> is the
/// CDEvent (<c>context</c> + <c>subject</c> + <c>customData</c>), and, as the CDEvents CloudEvents binding asks, the
/// CloudEvent's <c>id</c>, <c>source</c>, <c>type</c> and <c>time</c> are the context's and its <c>subject</c> is the
/// subject's id. Ids are stable — derived from the run, step, attempt and transition — so a re-published event is
/// recognisably the same event.
/// </summary>
internal static class CDEvents
{
    /// <summary>CDEvents specification version of the events.</summary>
    public const string SpecVersion = "0.4.1";

    /// <summary>CloudEvents specification version of the envelope.</summary>
    public const string CloudEventsSpecVersion = "1.0";

    /// <summary>A run was created and waits to start.</summary>
    public const string PipelineRunQueued = "dev.cdevents.pipelinerun.queued.0.2.0";

    /// <summary>A run started (or a retry of it started).</summary>
    public const string PipelineRunStarted = "dev.cdevents.pipelinerun.started.0.2.0";

    /// <summary>A run ended.</summary>
    public const string PipelineRunFinished = "dev.cdevents.pipelinerun.finished.0.2.0";

    /// <summary>A step attempt was dispatched to its driver.</summary>
    public const string TaskRunStarted = "dev.cdevents.taskrun.started.0.2.0";

    /// <summary>A step attempt ended.</summary>
    public const string TaskRunFinished = "dev.cdevents.taskrun.finished.0.2.0";

    /// <summary>CDEvents <c>outcome</c> of a run status: success, failure (a step failed or the run timed out) or error (cancelled).</summary>
    public static string Outcome(RunStatus status) => status switch
    {
        RunStatus.Succeeded => "success",
        RunStatus.Cancelled => "error",
        _ => "failure",
    };

    /// <summary>CDEvents <c>outcome</c> of an attempt's end.</summary>
    public static string Outcome(StepStatus status) => status switch
    {
        StepStatus.Succeeded => "success",
        StepStatus.Cancelled => "error",
        _ => "failure",
    };

    /// <summary>Subject id of a run: <c>{namespace}/{runId}</c>.</summary>
    public static string RunSubjectId(string ns, Guid runId) => $"{ns}/{runId}";

    /// <summary>
    /// The run's <c>url</c>: the one given (under the configured base URL), else the run's API path. A
    /// <c>pipelinerun.started</c> event must carry a url, so the path stands in when no base URL is configured.
    /// </summary>
    public static string RunUrl(string? url, string ns, Guid runId) => url ?? $"/namespaces/{ns}/runs/{runId}";

    /// <summary>Builds a pipelineRun event.</summary>
    /// <param name="id">Stable event id.</param>
    /// <param name="type">One of the <c>PipelineRun*</c> types.</param>
    /// <param name="source">CloudEvents source.</param>
    /// <param name="time">When the transition happened.</param>
    /// <param name="ns">Namespace.</param>
    /// <param name="runId">Run id.</param>
    /// <param name="pipeline">Pipeline name.</param>
    /// <param name="url">URL of the run, or null for its API path (see <see cref="RunUrl"/>).</param>
    /// <param name="outcome">Outcome (finished only).</param>
    /// <param name="errors">Why the run did not succeed (finished only), or null.</param>
    /// <param name="runAttempt">Run attempt (1, plus one per retry of the run).</param>
    public static string PipelineRun(
        string id, string type, string source, DateTimeOffset time, string ns, Guid runId, string pipeline, string? url, string? outcome, string? errors, int runAttempt) =>
        Encoding.UTF8.GetString(WritePipelineRun(id, type, source, time, ns, runId, pipeline, url, outcome, errors, runAttempt));

    private static ReadOnlySpan<byte> WritePipelineRun(
        string id, string type, string source, DateTimeOffset time, string ns, Guid runId, string pipeline, string? url, string? outcome, string? errors, int runAttempt) =>
        Write(id, type, source, time, RunSubjectId(ns, runId), "pipelineRun", w =>
        {
            w.WriteString("pipelineName", pipeline);
            w.WriteString("url", RunUrl(url, ns, runId));

            if (outcome is not null)
            {
                w.WriteString("outcome", outcome);
            }

            if (!string.IsNullOrEmpty(errors))
            {
                w.WriteString("errors", errors);
            }
        }, w =>
        {
            w.WriteString("namespace", ns);
            w.WriteString("runId", runId.ToString());
            w.WriteNumber("runAttempt", runAttempt);
        });

    /// <summary>Builds a taskRun event for one attempt of one step.</summary>
    /// <param name="id">Stable event id.</param>
    /// <param name="type"><see cref="TaskRunStarted"/> or <see cref="TaskRunFinished"/>.</param>
    /// <param name="source">CloudEvents source.</param>
    /// <param name="time">When the transition happened.</param>
    /// <param name="ns">Namespace.</param>
    /// <param name="runId">Run id.</param>
    /// <param name="step">Step id (the task's name).</param>
    /// <param name="attempt">Attempt number.</param>
    /// <param name="driver">Driver that runs the step.</param>
    /// <param name="url">URL of the run, or null for its API path (see <see cref="RunUrl"/>).</param>
    /// <param name="outcome">Outcome (finished only).</param>
    /// <param name="errors">Why the attempt did not succeed (finished only), or null.</param>
    public static string TaskRun(
        string id, string type, string source, DateTimeOffset time, string ns, Guid runId, string step, int attempt, string driver, string? url, string? outcome, string? errors) =>
        Encoding.UTF8.GetString(WriteTaskRun(id, type, source, time, ns, runId, step, attempt, driver, url, outcome, errors));

    private static ReadOnlySpan<byte> WriteTaskRun(
        string id, string type, string source, DateTimeOffset time, string ns, Guid runId, string step, int attempt, string driver, string? url, string? outcome, string? errors) =>
        Write(id, type, source, time, $"{ns}/{runId}/{step}/{attempt}", "taskRun", w =>
        {
            w.WriteString("taskName", step);
            w.WriteString("url", RunUrl(url, ns, runId));

            w.WriteStartObject("pipelineRun");
            w.WriteString("id", RunSubjectId(ns, runId));
            w.WriteString("source", source);
            w.WriteEndObject();
            if (outcome is not null)
            {
                w.WriteString("outcome", outcome);
            }

            if (!string.IsNullOrEmpty(errors))
            {
                w.WriteString("errors", errors);
            }
        }, w =>
        {
            w.WriteString("namespace", ns);
            w.WriteString("runId", runId.ToString());
            w.WriteString("step", step);
            w.WriteNumber("attempt", attempt);
            w.WriteString("driver", driver);
        });

    /// <summary>
    /// The CloudEvent JSON of an outbox entry: as stored when an earlier version built it up front, else built from
    /// its fields now.
    /// </summary>
    public static byte[] ToUtf8(OutboxEvent e, string source)
    {
        ArgumentNullException.ThrowIfNull(e);
        if (e.Json is { } json)
        {
            return Encoding.UTF8.GetBytes(json);
        }

        return e.Step is null
            ? WritePipelineRun(e.Id, e.Type, source, e.At, e.Namespace, e.RunId, e.Pipeline, e.Url, e.Outcome, e.Errors, e.RunAttempt).ToArray()
            : WriteTaskRun(e.Id, e.Type, source, e.At, e.Namespace, e.RunId, e.Step, e.Attempt, e.Driver ?? "", e.Url, e.Outcome, e.Errors).ToArray();
    }

    /// <summary>Writes an event into this thread's buffer; the span is valid until the thread's next write.</summary>
    private static ReadOnlySpan<byte> Write(
        string id, string type, string source, DateTimeOffset time, string subjectId, string subjectType, Action<Utf8JsonWriter> content, Action<Utf8JsonWriter> custom) =>
        ThreadJsonWriter.Write((id, type, source, time, subjectId, subjectType, content, custom), static (w, e) =>
        {
            var (id, type, source, time, subjectId, subjectType, content, custom) = e;
            var timestamp = time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture);
            w.WriteStartObject();
            w.WriteString("specversion", CloudEventsSpecVersion);
            w.WriteString("id", id);
            w.WriteString("source", source);
            w.WriteString("type", type);
            w.WriteString("subject", subjectId);
            w.WriteString("time", timestamp);
            w.WriteString("datacontenttype", "application/json");
            w.WriteStartObject("data");
            w.WriteStartObject("context");
            // CDEvents 0.4 names the spec version "version"; "specversion" is the CloudEvents envelope's (and CDEvents 0.5's).
            w.WriteString("version", SpecVersion);
            w.WriteString("id", id);
            w.WriteString("source", source);
            w.WriteString("type", type);
            w.WriteString("timestamp", timestamp);
            w.WriteEndObject();
            w.WriteStartObject("subject");
            w.WriteString("id", subjectId);
            w.WriteString("source", source);
            w.WriteString("type", subjectType);
            w.WriteStartObject("content");
            content(w);
            w.WriteEndObject();
            w.WriteEndObject();
            w.WriteStartObject("customData");
            custom(w);
            w.WriteEndObject();
            w.WriteString("customDataContentType", "application/json");
            w.WriteEndObject();
            w.WriteEndObject();
        });
}
