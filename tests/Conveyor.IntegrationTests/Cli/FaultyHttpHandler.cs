using System.Collections.Concurrent;
using System.Text;

namespace Conveyor.IntegrationTests;

/// <summary>What the <see cref="FaultyHttpHandler"/> does to the n-th log stream it is asked for.</summary>
public enum StreamFault
{
    /// <summary>Passes the stream on untouched.</summary>
    None = 0,

    /// <summary>Ends the stream cleanly right after its first log event, as a server that closes it would.</summary>
    EndAfterFirstEvent = 1,

    /// <summary>Delivers the first log event, then nothing at all (no heartbeats either), as a dead connection would.</summary>
    StallAfterFirstEvent = 2,

    /// <summary>Fails the request as an unreachable server would.</summary>
    Refuse = 3,
}

/// <summary>
/// A real HTTP transport that injects faults into run log streams (<c>/logs/stream</c>) and records every request's
/// path, <c>Last-Event-ID</c> and <c>Authorization</c> headers.
/// </summary>
public sealed class FaultyHttpHandler(Func<int, StreamFault> faults) : DelegatingHandler(new SocketsHttpHandler())
{
    private int _streams;

    public ConcurrentQueue<(string Path, string? LastEventId, string? Authorization)> Requests { get; } = new();

    public int Streams => Volatile.Read(ref _streams);

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        Requests.Enqueue((
            request.RequestUri!.PathAndQuery,
            request.Headers.TryGetValues("Last-Event-ID", out var ids) ? ids.Single() : null,
            request.Headers.Authorization?.ToString()));
        if (!request.RequestUri.AbsolutePath.EndsWith("/logs/stream", StringComparison.Ordinal))
        {
            return await base.SendAsync(request, cancellationToken);
        }

        var fault = faults(Interlocked.Increment(ref _streams));
        if (fault == StreamFault.Refuse)
        {
            throw new HttpRequestException("Connection refused (injected by the test)");
        }

        var response = await base.SendAsync(request, cancellationToken);
        if (fault != StreamFault.None && response.IsSuccessStatusCode)
        {
            var inner = await response.Content.ReadAsStreamAsync(cancellationToken);
            var content = new StreamContent(new FirstEventStream(inner, stall: fault == StreamFault.StallAfterFirstEvent));
            foreach (var header in response.Content.Headers)
            {
                content.Headers.TryAddWithoutValidation(header.Key, header.Value);
            }

            response.Content = content;
        }

        return response;
    }

    /// <summary>Passes bytes through up to the end of the first <c>event: log</c> block, then ends or stalls.</summary>
    private sealed class FirstEventStream(Stream inner, bool stall) : Stream
    {
        private readonly List<byte> _seen = [];
        private readonly Queue<byte> _pending = new();
        private bool _cut;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            while (_pending.Count == 0)
            {
                if (_cut)
                {
                    if (stall)
                    {
                        await Task.Delay(Timeout.Infinite, cancellationToken);
                    }

                    return 0;
                }

                var chunk = new byte[4096];
                var read = await inner.ReadAsync(chunk, cancellationToken);
                if (read == 0)
                {
                    return 0;
                }

                var start = _seen.Count;
                _seen.AddRange(chunk.AsSpan(0, read));
                var text = Encoding.UTF8.GetString([.. _seen]);
                var eventAt = text.IndexOf("event: log", StringComparison.Ordinal);
                var end = eventAt < 0 ? -1 : text.IndexOf("\n\n", eventAt, StringComparison.Ordinal);
                var upTo = end < 0 ? _seen.Count : Encoding.UTF8.GetByteCount(text[..(end + 2)]);
                for (var i = start; i < upTo; i++)
                {
                    _pending.Enqueue(_seen[i]);
                }

                _cut = end >= 0;
            }

            var n = 0;
            while (n < buffer.Length && _pending.Count > 0)
            {
                buffer.Span[n++] = _pending.Dequeue();
            }

            return n;
        }

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
