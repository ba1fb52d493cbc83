using System.Runtime.CompilerServices;
using System.Text;
using Conveyor.Api.Http;
using Conveyor.Contracts;
using Conveyor.Grains.Logs;
using Conveyor.Testing;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Time.Testing;

namespace Conveyor.UnitTests;

public sealed class LogEntryParserTests
{
    [Fact]
    public void Original_python_and_rust_entries_parse_to_the_same_shape()
    {
        var go = LogEntryParser.Parse("""{"runid":"r1","driver":"d","pipeline":"","timestamp":"1714650000","message":"hi"}"""u8)!;
        Assert.Equal(new LogEntry { RunId = "r1", Driver = "d", Timestamp = "1714650000", Message = "hi" }, go);

        var python = LogEntryParser.Parse("""{"run_id":"r2","driver":"py","timestamp":"2026-05-02T10:00:00+00:00","message":"m","level":"info"}"""u8)!;
        Assert.Equal("r2", python.RunId);
        Assert.Null(python.Labels);

        var rust = LogEntryParser.Parse("""{"RunID":"r3","driver":"rs","pipeline":null,"message":42,"labels":{"step":"build","attempt":2}}"""u8)!;
        Assert.Equal(("r3", "", "42"), (rust.RunId, rust.Pipeline, rust.Message));
        Assert.Equal(new Dictionary<string, string> { ["step"] = "build", ["attempt"] = "2" }, rust.Labels);
    }

    [Theory]
    [InlineData("{not json")]
    [InlineData("[1]")]
    [InlineData("\"text\"")]
    [InlineData("")]
    public void Anything_but_a_json_object_is_malformed(string body) =>
        Assert.Null(LogEntryParser.Parse(Encoding.UTF8.GetBytes(body)));

    [Fact]
    public void Truncation_keeps_whole_characters_and_says_how_much_was_cut()
    {
        Assert.Equal("short", LogEntryParser.Truncate("short", 10));
        Assert.Equal("abcd… [truncated 2 bytes]", LogEntryParser.Truncate("abcdef", 4));

        // "é" is 2 bytes and "😀" 4: neither is split.
        Assert.Equal("a… [truncated 2 bytes]", LogEntryParser.Truncate("aé", 2));
        Assert.Equal("a… [truncated 4 bytes]", LogEntryParser.Truncate("a😀", 3));
    }

    [Theory]
    [InlineData("9b2f3c1e-0000-4000-8000-000000000000", true)]
    [InlineData("abc123", true)]
    [InlineData("", false)]
    [InlineData("a.b", false)]
    [InlineData("a b", false)]
    [InlineData("*", false)]
    [InlineData(">", false)]
    public void Run_ids_must_be_one_subject_token(string runId, bool valid) => Assert.Equal(valid, LogEntryParser.IsValidRunId(runId));
}

public sealed class LogEventStreamTests
{
    /// <summary>Generous: nothing here waits for time to pass, only for work to be done on a possibly busy machine.</summary>
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_client_that_falls_behind_gets_a_dropped_event_and_the_stream_closes()
    {
        var store = new FakeStore(LogEventStream.BufferSize + 100);
        var body = new GatedStream();
        var http = new DefaultHttpContext();
        http.Response.Body = body;
        var writing = new LogEventStream { Store = store, RunId = "r", Extended = true }.WriteAsync(http, TimeProvider.System);

        // The reader stops following once the buffer is full, without waiting for the client.
        await store.Stopped.Task.WaitAsync(Deadline);
        body.Open.SetResult();
        await writing.WaitAsync(Deadline);

        var text = Encoding.UTF8.GetString(body.ToArray());
        Assert.StartsWith("id: 1\nevent: log\ndata: {\"seq\":1,", text, StringComparison.Ordinal);
        // Whatever was buffered is written, then the event names the last entry delivered, to resume after it.
        var ids = text.Split('\n').Where(l => l.StartsWith("id: ", StringComparison.Ordinal)).Select(l => int.Parse(l[4..], System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(Enumerable.Range(1, ids.Count), ids);
        Assert.InRange(ids.Count, LogEventStream.BufferSize, LogEventStream.BufferSize + 1);
        Assert.EndsWith($"event: dropped\ndata: {{\"after\":\"{ids[^1]}\"}}\n\n", text, StringComparison.Ordinal);
        Assert.Equal("text/event-stream", http.Response.ContentType);
    }

    [Fact]
    public async Task Original_framing_is_bare_data_lines_with_a_heartbeat_each_interval_of_the_clock()
    {
        var store = new FakeStore(2);
        var body = new GatedStream();
        body.Open.SetResult();
        using var cts = new CancellationTokenSource();
        var http = new DefaultHttpContext { RequestAborted = cts.Token };
        http.Response.Body = body;
        var clock = new FakeTimeProvider();
        // An hour: were the stream to read the wall clock instead of the one it is given, no heartbeat would come here.
        var interval = TimeSpan.FromHours(1);
        var writing = new LogEventStream { Store = store, RunId = "r", HeartbeatInterval = interval }.WriteAsync(http, clock);
        const string entries =
            "data: {\"runid\":\"r\",\"driver\":\"d\",\"pipeline\":\"\",\"timestamp\":\"t\",\"message\":\"m1\"}\n\n" +
            "data: {\"runid\":\"r\",\"driver\":\"d\",\"pipeline\":\"\",\"timestamp\":\"t\",\"message\":\"m2\"}\n\n";

        // Both entries are written; the clock has not moved, so no heartbeat can have been.
        await Eventually.TrueAsync(() => Text(body) == entries, Deadline, "both entries are written");
        Assert.Equal(entries, Text(body));

        // Just short of the interval the heartbeat is not due, whenever the stream next looks at the clock.
        clock.Advance(interval - TimeSpan.FromMilliseconds(1));
        Assert.Equal(entries, Text(body));

        clock.Advance(TimeSpan.FromMilliseconds(1));
        await Eventually.TrueAsync(() => Text(body) == entries + ": heartbeat\n\n", Deadline, "one heartbeat once the interval has passed");
        clock.Advance(interval);
        await Eventually.TrueAsync(() => Text(body) == entries + ": heartbeat\n\n: heartbeat\n\n", Deadline, "another after the next interval");

        await cts.CancelAsync();
        await writing.WaitAsync(Deadline);
        Assert.Equal(entries + ": heartbeat\n\n: heartbeat\n\n", Text(body));
    }

    private static string Text(GatedStream body) => Encoding.UTF8.GetString(body.ToArray());

    private sealed class FakeStore(int count) : ILogStore
    {
        public TaskCompletionSource Stopped { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task<LogPage> ReadAsync(string runId, LogQuery query, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public async IAsyncEnumerable<StoredLogEntry> FollowAsync(string runId, ulong after = 0, [EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            try
            {
                for (var i = 1; i <= count; i++)
                {
                    yield return new StoredLogEntry((ulong)i, new LogEntry { RunId = runId, Driver = "d", Timestamp = "t", Message = $"m{i}" });
                }

                await Task.Delay(Timeout.Infinite, cancellationToken);
            }
            finally
            {
                Stopped.TrySetResult();
            }
        }
    }

    /// <summary>A response body whose writes wait until <see cref="Open"/> completes, like a client that reads nothing.</summary>
    private sealed class GatedStream : MemoryStream
    {
        private readonly Lock _gate = new();

        public TaskCompletionSource Open { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            await Open.Task.WaitAsync(cancellationToken);
            lock (_gate)
            {
                base.Write(buffer.Span);
            }
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public new byte[] ToArray()
        {
            lock (_gate)
            {
                return base.ToArray();
            }
        }
    }
}
