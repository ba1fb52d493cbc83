using System.Text;

namespace Conveyor.Client;

/// <summary>One Server-Sent Event: its <c>event</c> name (<c>message</c> when none), <c>id</c> and joined <c>data</c> lines.</summary>
internal sealed record ServerSentEvent(string Name, string? Id, string Data);

/// <summary>
/// Reads Server-Sent Events from an open response. A read never throws for a broken stream: it returns why the stream
/// ended, so that a caller that yields events can decide to resume.
/// </summary>
internal sealed class ServerSentEvents(HttpResponseMessage response, Stream stream) : IDisposable
{
    private readonly StreamReader _reader = new(stream, Encoding.UTF8);

    /// <summary>The next event; or no event and why the stream ended (closed, broken, or silent for <paramref name="idleTimeout"/>).</summary>
    public async Task<(ServerSentEvent? Event, string? Failure, Exception? Cause)> ReadAsync(TimeSpan idleTimeout, TimeProvider timeProvider, CancellationToken cancellationToken)
    {
        string? name = null, id = null;
        var data = new StringBuilder();
        while (true)
        {
            string? line;
            using (var idle = idleTimeout > TimeSpan.Zero && idleTimeout != Timeout.InfiniteTimeSpan ? new CancellationTokenSource(idleTimeout, timeProvider) : new CancellationTokenSource())
            using (var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, idle.Token))
            {
                try
                {
                    line = await _reader.ReadLineAsync(linked.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
                {
                    return (null, $"nothing arrived for {idleTimeout.TotalSeconds:0.###} s, not even a heartbeat", ex);
                }
                catch (IOException ex)
                {
                    return (null, "the connection broke: " + ex.Message, ex);
                }
                catch (HttpRequestException ex)
                {
                    return (null, "the connection broke: " + ex.Message, ex);
                }
            }

            if (line is null)
            {
                return (null, "the server closed the stream", null);
            }

            if (line.Length == 0)
            {
                if (data.Length > 0 || name is not null)
                {
                    return (new ServerSentEvent(name ?? "message", id, data.ToString()), null, null);
                }

                continue;
            }

            if (line[0] == ':')
            {
                continue; // a comment: the server's heartbeat
            }

            var colon = line.IndexOf(':', StringComparison.Ordinal);
            var field = colon < 0 ? line : line[..colon];
            var value = colon < 0 ? "" : line[(colon + 1)..];
            if (value.StartsWith(' '))
            {
                value = value[1..];
            }

            switch (field)
            {
                case "event":
                    name = value;
                    break;
                case "id":
                    id = value;
                    break;
                case "data":
                    if (data.Length > 0)
                    {
                        data.Append('\n');
                    }

                    data.Append(value);
                    break;
            }
        }
    }

    public void Dispose()
    {
        _reader.Dispose();
        response.Dispose();
    }
}
