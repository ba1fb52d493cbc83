using System.Text;
using Conveyor.Grains.Nats;
using Conveyor.Nats;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Conveyor.Grains.Tests;

[Collection(ClusterCollection.Name)]
public sealed class JetStreamPublisherTests(ClusterFixture fx) : IAsyncLifetime
{
    private readonly string _stream = "pubtest" + Guid.NewGuid().ToString("N")[..8];
    private NatsConnection _nats = null!;

    public async Task InitializeAsync()
    {
        _nats = new NatsConnection(NatsOpts.Default with { Url = fx.Nats.Url, RequestTimeout = TimeSpan.FromSeconds(2) });
        await new NatsJSContext(_nats).CreateStreamAsync(new StreamConfig(_stream, [_stream + ".>"]) { MaxMsgSize = 1024 });
    }

    public async Task DisposeAsync() => await _nats.DisposeAsync();

    [Fact]
    public async Task Many_publishes_in_flight_are_each_stored_once_in_order_and_a_repeated_id_is_a_duplicate()
    {
        await using var publisher = new JetStreamPublisher(_nats, TimeProvider.System, NullLogger<JetStreamPublisher>.Instance);
        var acks = await Task.WhenAll(Enumerable.Range(1, 200).Select(i =>
            publisher.PublishAsync($"{_stream}.a", Encoding.UTF8.GetBytes($"m{i}"), new NatsHeaders { ["Nats-Msg-Id"] = $"id{i}" })));

        Assert.Equal(Enumerable.Range(1, 200).Select(i => (ulong)i), acks.Select(a => a.Sequence).Order());
        Assert.All(acks, a => Assert.False(a.Duplicate));
        var again = await publisher.PublishAsync($"{_stream}.a", "m7"u8.ToArray(), new NatsHeaders { ["Nats-Msg-Id"] = "id7" });
        Assert.True(again.Duplicate);
        Assert.Equal(acks[6].Sequence, again.Sequence);
        var stream = await new NatsJSContext(_nats).GetStreamAsync(_stream);
        Assert.Equal(200, (int)stream.Info.State.Messages);
    }

    [Fact]
    public async Task A_refused_message_and_a_subject_no_stream_takes_fail_with_the_reason()
    {
        await using var publisher = new JetStreamPublisher(_nats, TimeProvider.System, NullLogger<JetStreamPublisher>.Instance);

        var tooLarge = await Assert.ThrowsAsync<JetStreamPublishException>(() =>
            publisher.PublishAsync($"{_stream}.a", new byte[4096], new NatsHeaders { ["Nats-Msg-Id"] = "big" }));
        // JetStream's "message size exceeds maximum allowed", by its stable error code.
        Assert.Contains("err_code 10054", tooLarge.Message, StringComparison.Ordinal);
        Assert.False(tooLarge.Transient);

        var nowhere = await Assert.ThrowsAsync<JetStreamPublishException>(() =>
            publisher.PublishAsync("nostream" + Guid.NewGuid().ToString("N"), "x"u8.ToArray(), new NatsHeaders()));
        Assert.Contains("no JetStream stream", nowhere.Message, StringComparison.Ordinal);
        Assert.True(nowhere.Transient);

        // The publisher still works after both.
        Assert.False((await publisher.PublishAsync($"{_stream}.a", "ok"u8.ToArray(), new NatsHeaders())).Duplicate);
    }

    [Fact]
    public async Task A_publish_nobody_answers_fails_once_the_request_timeout_has_passed()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var publisher = new JetStreamPublisher(_nats, time, NullLogger<JetStreamPublisher>.Instance);
        // A plain subscriber, not a stream: the message is delivered, so the server reports no missing responder, and
        // nobody answers.
        var subject = "silent" + Guid.NewGuid().ToString("N");
        await using var silent = await _nats.SubscribeCoreAsync<byte[]>(subject);
        await _nats.PingAsync();

        var publish = publisher.PublishAsync(subject, "x"u8.ToArray(), new NatsHeaders());
        await silent.Msgs.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.False(publish.IsCompleted);

        time.Advance(TimeSpan.FromSeconds(4));
        var timedOut = await Assert.ThrowsAsync<JetStreamPublishException>(() => publish.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("did not answer", timedOut.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{\"stream\":\"s\",\"seq\":12}", true, 12UL, false, "", 0)]
    [InlineData("{\"stream\":\"s\",\"seq\":3,\"duplicate\":true}", true, 3UL, true, "", 0)]
    [InlineData("{\"error\":{\"code\":400,\"err_code\":10054,\"description\":\"maximum message size exceeded\"},\"stream\":\"s\"}", false, 0UL, false, "maximum message size exceeded (err_code 10054)", 400)]
    [InlineData("{\"error\":{\"code\":503,\"description\":\"JetStream system temporarily unavailable\"}}", false, 0UL, false, "JetStream system temporarily unavailable", 503)]
    [InlineData("{\"stream\":\"s\"}", false, 0UL, false, "an answer without a sequence", 0)]
    [InlineData("not json", false, 0UL, false, "an unreadable answer", 0)]
    [InlineData("", false, 0UL, false, "an empty answer", 0)]
    public void Publish_answers_are_read_as_jetstream_writes_them(string json, bool ok, ulong sequence, bool duplicate, string error, int code)
    {
        Assert.Equal(ok, JetStreamPublisher.TryParseAck(Encoding.UTF8.GetBytes(json), out var ack, out var why, out var status));
        Assert.Equal(code, status);
        Assert.Equal(sequence, ack.Sequence);
        Assert.Equal(duplicate, ack.Duplicate);
        if (!ok)
        {
            Assert.StartsWith(error, why, StringComparison.Ordinal);
        }
    }
}
