using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Microsoft.Extensions.Options;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Conveyor.Grains.Runs;

/// <summary>
/// Where a finished run goes before retention (or <c>DELETE /runs/{id}</c>) deletes it. The default keeps runs as JSON
/// in the JetStream stream <c>conveyor-archive</c> with limits of its own (<see cref="RunArchiveOptions"/>); register
/// another <see cref="IRunArchive"/> before <c>AddConveyorGrains</c> to send them elsewhere.
/// </summary>
public interface IRunArchive
{
    /// <summary>Whether runs are archived before they are deleted.</summary>
    bool IsEnabled { get; }

    /// <summary>Stores <paramref name="run"/> (idempotent: archiving a run again replaces its copy).</summary>
    Task ArchiveAsync(RunState run, CancellationToken cancellationToken = default);

    /// <summary>An archived run of namespace <paramref name="ns"/>, or null when the archive holds none.</summary>
    Task<ArchivedRun?> GetAsync(string ns, Guid runId, CancellationToken cancellationToken = default);
}

/// <summary>A run read back from the archive.</summary>
/// <param name="Run">The run as it was when archived (steps without their attempts when it was too large to keep whole).</param>
/// <param name="ArchivedAt">When it was archived.</param>
/// <param name="Complete">False when the run was too large for one message and its attempts were left out.</param>
public sealed record ArchivedRun(RunState Run, DateTimeOffset ArchivedAt, bool Complete);

/// <summary>The run archive's settings (configuration section <c>Conveyor:Archive</c>).</summary>
public sealed class RunArchiveOptions
{
    /// <summary>Configuration section.</summary>
    public const string Section = "Conveyor:Archive";

    /// <summary>Whether runs are archived before retention deletes them.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>How long the archive keeps a run (JetStream max age of <c>conveyor-archive</c>).</summary>
    public TimeSpan MaxAge { get; set; } = TimeSpan.FromDays(365);

    /// <summary>Size cap of the archive stream; the oldest runs go first. -1: unlimited.</summary>
    public long MaxBytes { get; set; } = 1L << 30;
}

/// <summary>No archive: retention deletes runs without keeping a copy.</summary>
internal sealed class NoRunArchive : IRunArchive
{
    public bool IsEnabled => false;

    public Task ArchiveAsync(RunState run, CancellationToken cancellationToken = default) => Task.CompletedTask;

    public Task<ArchivedRun?> GetAsync(string ns, Guid runId, CancellationToken cancellationToken = default) => Task.FromResult<ArchivedRun?>(null);
}

/// <summary>
/// <see cref="IRunArchive"/> on the <c>conveyor-archive</c> stream: one subject per run
/// (<c>conveyor.archive.{namespace}.{run}</c>, one message kept per subject), read back with a last-by-subject get. A
/// run larger than the server's maximum message size is gzipped, and if still too large kept without its attempts.
/// </summary>
internal sealed class JetStreamRunArchive(INatsConnection connection, IOptions<RunArchiveOptions> options) : IRunArchive
{
    private const string EncodingHeader = "Conveyor-Archive-Encoding";
    private const string CompleteHeader = "Conveyor-Archive-Complete";
    private readonly NatsJSContext _js = new(connection);

    public bool IsEnabled => options.Value.Enabled;

    public async Task ArchiveAsync(RunState run, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(run);
        var limit = Math.Max(64 * 1024, (connection.ServerInfo?.MaxPayload ?? 1024 * 1024) - 4096);
        var body = RunArchiveJson.Serialize(run, withAttempts: true);
        var headers = new NatsHeaders { [CompleteHeader] = "true" };
        if (body.Length > limit)
        {
            body = Gzip(body);
            headers[EncodingHeader] = "gzip";
            if (body.Length > limit)
            {
                body = Gzip(RunArchiveJson.Serialize(run, withAttempts: false));
                headers[CompleteHeader] = "false";
            }
        }

        var ack = await _js.PublishAsync(
            Subjects.Archive(run.Plan.Namespace, run.RunId.ToString()),
            body,
            headers: headers,
            opts: new NatsJSPubOpts { MsgId = "archive:" + run.RunId + ":" + run.RunAttempt },
            cancellationToken: cancellationToken).ConfigureAwait(false);
        ack.EnsureSuccess();
    }

    public async Task<ArchivedRun?> GetAsync(string ns, Guid runId, CancellationToken cancellationToken = default)
    {
        var message = await Nats.StoredMessages.LastAsync(connection, Subjects.ArchiveStream, Subjects.Archive(ns, runId.ToString()), cancellationToken).ConfigureAwait(false);
        if (message is null)
        {
            return null;
        }

        var data = message.Headers.TryGetValue(EncodingHeader, out var encoding) && encoding == "gzip" ? Gunzip(message.Data) : message.Data;
        var complete = !(message.Headers.TryGetValue(CompleteHeader, out var c) && c == "false");
        return new ArchivedRun(RunArchiveJson.Deserialize(data), message.Time, complete);
    }

    private static byte[] Gzip(byte[] data)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Optimal))
        {
            gzip.Write(data);
        }

        return output.ToArray();
    }

    private static byte[] Gunzip(byte[] data)
    {
        using var input = new GZipStream(new MemoryStream(data), CompressionMode.Decompress);
        using var output = new MemoryStream();
        input.CopyTo(output);
        return output.ToArray();
    }
}

/// <summary>The archive's JSON form of a run: the stored state, camel-cased, enums by name, without webhook keys.</summary>
internal static class RunArchiveJson
{
    private static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        Converters = { new JsonStringEnumConverter() },
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public static byte[] Serialize(RunState run, bool withAttempts)
    {
        var node = JsonSerializer.SerializeToNode(run, Options)!.AsObject();
        // A webhook's key is a credential: it never leaves the engine's own storage.
        if (node["plan"]?["pipeline"]?["webhooks"] is JsonArray hooks)
        {
            foreach (var hook in hooks)
            {
                hook?.AsObject().Remove("secret");
            }
        }

        node.Remove("outbox");
        if (!withAttempts && node["steps"] is JsonArray steps)
        {
            foreach (var step in steps)
            {
                step?.AsObject().Remove("attempts");
            }
        }

        return JsonSerializer.SerializeToUtf8Bytes(node, Options);
    }

    public static RunState Deserialize(byte[] json) =>
        JsonSerializer.Deserialize<RunState>(json, Options) ?? throw new JsonException("the archived run is null");
}
