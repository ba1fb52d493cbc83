using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using NATS.Client.Core;

namespace Conveyor.Grains.Nats;

/// <summary>A message read back from a stream by the JetStream message-get API.</summary>
/// <param name="Subject">Its subject.</param>
/// <param name="Sequence">Its stream sequence.</param>
/// <param name="Data">Its body.</param>
/// <param name="Headers">Its headers (empty when none).</param>
/// <param name="Time">When the stream stored it.</param>
internal sealed record StoredMessage(string Subject, ulong Sequence, byte[] Data, NatsHeaders Headers, DateTimeOffset Time);

/// <summary>
/// Reads single messages from a stream (<c>$JS.API.STREAM.MSG.GET</c>) by sequence or as the last of a subject: the
/// JetStream client offers it only for key-value buckets.
/// </summary>
internal static class StoredMessages
{
    /// <summary>The message at <paramref name="sequence"/>, or null when the stream holds none there.</summary>
    public static Task<StoredMessage?> BySequenceAsync(INatsConnection connection, string stream, ulong sequence, CancellationToken cancellationToken = default) =>
        GetAsync(connection, stream, new JsonObject { ["seq"] = sequence }, cancellationToken);

    /// <summary>The last message on <paramref name="subject"/>, or null when the stream holds none.</summary>
    public static Task<StoredMessage?> LastAsync(INatsConnection connection, string stream, string subject, CancellationToken cancellationToken = default) =>
        GetAsync(connection, stream, new JsonObject { ["last_by_subj"] = subject }, cancellationToken);

    private static async Task<StoredMessage?> GetAsync(INatsConnection connection, string stream, JsonObject request, CancellationToken cancellationToken)
    {
        var reply = await connection.RequestAsync<byte[], byte[]>(
            "$JS.API.STREAM.MSG.GET." + stream, JsonSerializer.SerializeToUtf8Bytes(request), cancellationToken: cancellationToken).ConfigureAwait(false);
        using var document = JsonDocument.Parse(reply.Data ?? []);
        if (document.RootElement.TryGetProperty("error", out var error))
        {
            var code = error.TryGetProperty("code", out var c) ? c.GetInt32() : 0;
            return code == 404 ? null : throw new InvalidOperationException($"reading stream {stream} failed: {error.GetRawText()}");
        }

        var message = document.RootElement.GetProperty("message");
        return new StoredMessage(
            message.GetProperty("subject").GetString() ?? "",
            message.GetProperty("seq").GetUInt64(),
            message.TryGetProperty("data", out var data) ? data.GetBytesFromBase64() : [],
            message.TryGetProperty("hdrs", out var hdrs) ? ParseHeaders(hdrs.GetBytesFromBase64()) : new NatsHeaders(),
            message.GetProperty("time").GetDateTimeOffset());
    }

    /// <summary>Parses a NATS header block (<c>NATS/1.0\r\nName: value\r\n…</c>).</summary>
    private static NatsHeaders ParseHeaders(byte[] block)
    {
        var headers = new NatsHeaders();
        var lines = Encoding.UTF8.GetString(block).Split("\r\n");
        foreach (var line in lines.Skip(1))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0)
            {
                continue;
            }

            var name = line[..colon];
            var value = line[(colon + 1)..].Trim();
            headers[name] = headers.TryGetValue(name, out var existing) ? Microsoft.Extensions.Primitives.StringValues.Concat(existing, value) : value;
        }

        return headers;
    }
}
