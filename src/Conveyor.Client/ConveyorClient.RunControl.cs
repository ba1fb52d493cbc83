using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Conveyor.Contracts;

namespace Conveyor.Client;

/// <content>Run control of the pipeline language: approval gates, pause and resume, live run events.</content>
public sealed partial class ConveyorClient
{
    /// <summary><c>POST /runs/{id}/steps/{step}/approve</c>: the approval gate succeeds and the run goes on.</summary>
    /// <exception cref="ConveyorApiException">403 when the gate needs an admin key; 409 unless the step waits for approval.</exception>
    public Task<RunInfo> ApproveStepAsync(Guid runId, string step, string? comment = null, CancellationToken cancellationToken = default) =>
        DecideAsync(runId, step, "approve", comment, cancellationToken);

    /// <summary><c>POST /runs/{id}/steps/{step}/reject</c>: the approval gate fails.</summary>
    /// <exception cref="ConveyorApiException">403 when the gate needs an admin key; 409 unless the step waits for approval.</exception>
    public Task<RunInfo> RejectStepAsync(Guid runId, string step, string? comment = null, CancellationToken cancellationToken = default) =>
        DecideAsync(runId, step, "reject", comment, cancellationToken);

    /// <summary><c>POST /runs/{id}/pause</c>: nothing new is dispatched; in-flight steps finish and are recorded.</summary>
    /// <exception cref="ConveyorApiException">409 unless the run is Running.</exception>
    public Task<RunInfo> PauseRunAsync(Guid runId, CancellationToken cancellationToken = default) =>
        SendAsync<object, RunInfo>(HttpMethod.Post, $"runs/{runId:D}/pause", null, null, ClientJsonContext.Default.RunInfo, cancellationToken);

    /// <summary><c>POST /runs/{id}/resume</c>: a paused run goes on.</summary>
    /// <exception cref="ConveyorApiException">409 unless the run is Paused.</exception>
    public Task<RunInfo> ResumeRunAsync(Guid runId, CancellationToken cancellationToken = default) =>
        SendAsync<object, RunInfo>(HttpMethod.Post, $"runs/{runId:D}/resume", null, null, ClientJsonContext.Default.RunInfo, cancellationToken);

    /// <summary>
    /// <c>GET /runs/{id}/events</c>: every run and step transition of the run, from the start (or after
    /// <paramref name="lastEventId"/>, a <see cref="RunEvent.EventId"/>), then live; the sequence ends once the run has
    /// ended. When the connection drops (a silo stops, the reader fell behind), it reconnects after the last event it
    /// returned, so each transition is returned exactly once.
    /// </summary>
    /// <exception cref="ConveyorApiException">404 for an unknown run; 400 for a bad event id.</exception>
    public IAsyncEnumerable<RunEvent> FollowRunEventsAsync(Guid runId, string? lastEventId = null, CancellationToken cancellationToken = default) =>
        FollowEventsAsync($"runs/{runId:D}/events", lastEventId, cancellationToken);

    /// <summary>
    /// <c>GET /runs/events</c>: every run's transitions in the namespace (or one <paramref name="pipeline"/>'s), only
    /// those after which the run has <paramref name="status"/> when given; what the server keeps first, then live,
    /// until <paramref name="cancellationToken"/> stops it. Reconnects after the last event like
    /// <see cref="FollowRunEventsAsync"/>.
    /// </summary>
    public IAsyncEnumerable<RunEvent> FollowNamespaceRunEventsAsync(
        string? pipeline = null, RunStatus? status = null, string? lastEventId = null, CancellationToken cancellationToken = default)
    {
        var query = new List<string>();
        if (!string.IsNullOrEmpty(pipeline))
        {
            query.Add("pipeline=" + Uri.EscapeDataString(pipeline));
        }

        if (status is { } s)
        {
            query.Add("status=" + s);
        }

        return FollowEventsAsync("runs/events" + (query.Count == 0 ? "" : "?" + string.Join('&', query)), lastEventId, cancellationToken);
    }

    private Task<RunInfo> DecideAsync(Guid runId, string step, string decision, string? comment, CancellationToken cancellationToken) =>
        SendAsync(
            HttpMethod.Post,
            $"runs/{runId:D}/steps/{Segment(step)}/{decision}",
            new ApprovalRequest { Comment = comment },
            ClientJsonContext.Default.ApprovalRequest,
            ClientJsonContext.Default.RunInfo,
            cancellationToken);

    private async IAsyncEnumerable<RunEvent> FollowEventsAsync(
        string path, string? lastEventId, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var last = lastEventId;
        var failures = 0;
        while (true)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, Url(path));
            Authorize(request);
            request.Headers.Accept.ParseAdd("text/event-stream");
            if (!string.IsNullOrEmpty(last))
            {
                request.Headers.TryAddWithoutValidation("Last-Event-ID", last);
            }

            var ended = false;
            var received = false;
            using (var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false))
            {
                await EnsureSuccessAsync(response, cancellationToken).ConfigureAwait(false);
                var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
                await using (stream.ConfigureAwait(false))
                {
                    using var reader = new StreamReader(stream);
                    string? id = null;
                    string? name = null;
                    var data = new StringBuilder();
                    while (!ended)
                    {
                        string? line;
                        try
                        {
                            line = await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false);
                        }
                        catch (IOException) when (!cancellationToken.IsCancellationRequested)
                        {
                            // The connection broke mid-stream: reconnect after the last event below.
                            break;
                        }

                        if (line is null)
                        {
                            break;
                        }

                        if (line.Length > 0)
                        {
                            if (line.StartsWith("id:", StringComparison.Ordinal))
                            {
                                id = line[3..].Trim();
                            }
                            else if (line.StartsWith("event:", StringComparison.Ordinal))
                            {
                                name = line[6..].Trim();
                            }
                            else if (line.StartsWith("data:", StringComparison.Ordinal))
                            {
                                data.Append(line.AsSpan(line.Length > 5 && line[5] == ' ' ? 6 : 5));
                            }

                            // ":" lines are heartbeats.
                            continue;
                        }

                        switch (name)
                        {
                            case "run" or "step" when data.Length > 0:
                                var item = JsonSerializer.Deserialize(data.ToString(), ClientJsonContext.Default.RunEvent)
                                    ?? throw new ConveyorApiException("The Conveyor API sent an empty run event.");
                                last = id ?? last;
                                received = true;
                                yield return item with { EventId = id };
                                break;
                            case "end":
                                ended = true;
                                break;
                        }

                        id = name = null;
                        data.Clear();
                    }
                }
            }

            if (ended)
            {
                yield break;
            }

            // Dropped (the server ended the stream without its end, e.g. a draining silo or a slow reader): resume,
            // giving up after a few reconnects that brought nothing new.
            failures = received ? 0 : failures + 1;
            if (failures > 5)
            {
                throw new ConveyorApiException($"The Conveyor API kept ending the event stream {path} without sending anything.");
            }

            if (failures > 0)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(200 * failures), _timeProvider, cancellationToken).ConfigureAwait(false);
            }
        }
    }
}
