using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using NATS.Client.Core;

namespace Conveyor.Driver.Sdk.Tests.Infrastructure;

/// <summary>Records every message on a subject through a core NATS subscription (JetStream publishes included).</summary>
public sealed class SubjectRecorder : IAsyncDisposable
{
    private readonly INatsSub<byte[]> _subscription;
    private readonly Task _reader;
    private readonly ConcurrentQueue<RecordedMessage> _messages = new();

    private SubjectRecorder(INatsSub<byte[]> subscription)
    {
        _subscription = subscription;
        _reader = Task.Run(ReadAsync);
    }

    public IReadOnlyList<RecordedMessage> Messages => [.. _messages];

    public static async Task<SubjectRecorder> StartAsync(INatsConnection connection, string subject)
    {
        var subscription = await connection.SubscribeCoreAsync<byte[]>(subject);
        // The server has registered the subscription once it answers a ping sent after it.
        await connection.PingAsync();
        return new SubjectRecorder(subscription);
    }

    /// <summary>Recorded messages whose JSON body has <c>run_id</c> (or <c>runid</c>) equal to <paramref name="runId"/>.</summary>
    public IReadOnlyList<RecordedMessage> ForRun(string runId) =>
        [.. Messages.Where(m => m.RunId == runId)];

    public async ValueTask DisposeAsync()
    {
        await _subscription.UnsubscribeAsync();
        await _reader;
        await _subscription.DisposeAsync();
    }

    private async Task ReadAsync()
    {
        await foreach (var msg in _subscription.Msgs.ReadAllAsync())
        {
            _messages.Enqueue(new RecordedMessage(msg.Subject, msg.Data ?? [], msg.Headers));
        }
    }
}

public sealed record RecordedMessage(string Subject, byte[] Data, NatsHeaders? Headers)
{
    public string Text => Encoding.UTF8.GetString(Data);

    public JsonElement Json => JsonDocument.Parse(Data).RootElement;

    public string? RunId
    {
        get
        {
            try
            {
                var json = Json;
                if (json.ValueKind != JsonValueKind.Object)
                {
                    return null;
                }

                return json.TryGetProperty("run_id", out var a) ? a.GetString()
                    : json.TryGetProperty("runid", out var b) ? b.GetString()
                    : null;
            }
            catch (JsonException)
            {
                return null;
            }
        }
    }

    public string? Header(string name) =>
        Headers is not null && Headers.TryGetValue(name, out var values) && values.Count > 0 ? values[0] : null;
}
