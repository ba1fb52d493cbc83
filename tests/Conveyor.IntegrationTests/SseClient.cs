using System.Runtime.CompilerServices;
using System.Text;

namespace Conveyor.IntegrationTests;

/// <summary>One Server-Sent Event: its id, event name (null: unnamed) and data.</summary>
public sealed record SseEvent(string? Id, string? Event, string Data);

/// <summary>Reads a text/event-stream response event by event, exactly as framed on the wire.</summary>
public static class SseClient
{
    public static async IAsyncEnumerable<SseEvent> ReadAsync(
        HttpClient http, string path, string? lastEventId = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (lastEventId is not null)
        {
            request.Headers.Add("Last-Event-ID", lastEventId);
        }

        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        Assert.True(response.IsSuccessStatusCode, $"GET {path}: {(int)response.StatusCode}");
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        using var reader = new StreamReader(stream);
        string? id = null, name = null;
        var data = new StringBuilder();
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            if (line.Length == 0)
            {
                if (data.Length > 0 || name is not null)
                {
                    yield return new SseEvent(id, name, data.ToString());
                }

                id = name = null;
                data.Clear();
            }
            else if (line.StartsWith("id: ", StringComparison.Ordinal))
            {
                id = line[4..];
            }
            else if (line.StartsWith("event: ", StringComparison.Ordinal))
            {
                name = line[7..];
            }
            else if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                data.Append(line[6..]);
            }
        }
    }

    /// <summary>Collects events until <paramref name="until"/> holds for the list or the stream ends.</summary>
    public static async Task<List<SseEvent>> CollectAsync(
        HttpClient http, string path, Func<List<SseEvent>, bool> until, TimeSpan timeout, string? lastEventId = null)
    {
        using var cts = new CancellationTokenSource(timeout);
        var events = new List<SseEvent>();
        try
        {
            await foreach (var e in ReadAsync(http, path, lastEventId, cts.Token))
            {
                events.Add(e);
                if (until(events))
                {
                    break;
                }
            }
        }
        catch (OperationCanceledException) when (cts.IsCancellationRequested)
        {
            Assert.Fail($"SSE {path}: condition not met within {timeout}; got {events.Count} events");
        }

        return events;
    }
}
