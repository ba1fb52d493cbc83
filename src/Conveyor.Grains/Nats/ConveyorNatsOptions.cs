using System.ComponentModel.DataAnnotations;

namespace Conveyor.Grains.Nats;

/// <summary>How the engine connects to NATS (configuration section <c>Conveyor:Nats</c>).</summary>
public sealed class ConveyorNatsOptions
{
    /// <summary>Configuration section.</summary>
    public const string Section = "Conveyor:Nats";

    /// <summary>NATS server URL. Drivers connect to the same server.</summary>
    [Required]
    public string Url { get; set; } = "nats://127.0.0.1:4222";

    /// <summary>User name for user/password authentication.</summary>
    public string? User { get; set; }

    /// <summary>Password for user/password authentication. Never logged.</summary>
    public string? Password { get; set; }

    /// <summary>Token for token authentication. Never logged.</summary>
    public string? Token { get; set; }

    /// <summary>PEM file of the CA that signed the server's certificate; setting it (or a <c>tls://</c> URL) requires TLS.</summary>
    public string? TlsCaFile { get; set; }

    /// <summary>PEM client certificate, for servers that verify clients (<c>--tlsverify</c>).</summary>
    public string? TlsCertFile { get; set; }

    /// <summary>PEM private key of <see cref="TlsCertFile"/>. Never logged.</summary>
    public string? TlsKeyFile { get; set; }

    /// <summary>
    /// Replicas of every stream the engine creates and of its durable consumers: 1 for a single nats-server, 3 for a
    /// three-node cluster (a stream then survives the loss of any one node). Applied to existing streams at start where
    /// the server allows it; when the cluster cannot place them, <c>/readyz</c> says so. Drivers' consumers inherit the
    /// <c>messages</c> stream's replicas unless they set their own.
    /// </summary>
    [Range(1, 5)]
    public int Replicas { get; set; } = 1;

    /// <summary>Name of the engine's shared durable consumer on <c>pipeline-engine</c>.</summary>
    [Required]
    public string ResultConsumerName { get; set; } = "pipeline-engine";

    /// <summary>Driver results processed concurrently by one silo.</summary>
    [Range(1, 4096)]
    public int ResultConcurrency { get; set; } = 64;

    /// <summary>How long the server waits for the engine's ack of a result before redelivering it.</summary>
    public TimeSpan ResultAckWait { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Deliveries of a driver result before the engine gives up on it and moves it to the dead-letter subject
    /// <c>conveyor.deadletter.results</c> (stream <c>conveyor-deadletter</c>); the server stops redelivering two after.
    /// </summary>
    [Range(1, 1000)]
    public int ResultMaxDeliver { get; set; } = 10;

    /// <summary>
    /// Delays before a result whose run could not take it is delivered again, by delivery (the last one repeats).
    /// Empty (default): 1 s, 2 s, 5 s, 10 s, 30 s, then 1 min. (A list, not a default the configuration binder would
    /// append to.)
    /// </summary>
    public TimeSpan[] ResultBackoff { get; set; } = [];

    /// <summary>The backoff in force: <see cref="ResultBackoff"/>, or the default when it is empty.</summary>
    internal IReadOnlyList<TimeSpan> EffectiveResultBackoff => ResultBackoff is { Length: > 0 } set
        ? set
        : [TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(30), TimeSpan.FromMinutes(1)];

    /// <summary>How long the dead-letter stream keeps a message.</summary>
    public TimeSpan DeadLetterRetention { get; set; } = TimeSpan.FromDays(30);

    /// <summary>Size cap of the dead-letter stream (oldest first); -1 = unlimited.</summary>
    [Range(-1, long.MaxValue)]
    public long DeadLetterMaxBytes { get; set; } = 256L << 20;

    /// <summary>How long log entries stay in the <c>logs-engine</c> and <c>conveyor-logs</c> streams.</summary>
    public TimeSpan LogRetention { get; set; } = TimeSpan.FromDays(7);

    /// <summary>Size cap of the <c>conveyor-logs</c> store stream (oldest entries go first); -1 = unlimited.</summary>
    [Range(-1, long.MaxValue)]
    public long LogMaxBytes { get; set; } = 1L << 30;

    /// <summary>A log message longer than this (UTF-8 bytes) is truncated when stored, with a marker saying how much.</summary>
    [Range(256, 16 * 1024 * 1024)]
    public int MaxLogEntryBytes { get; set; } = 64 * 1024;

    /// <summary>Name of the engine's shared durable consumer on <c>logs-engine</c>.</summary>
    [Required]
    public string LogConsumerName { get; set; } = "logs-engine";

    /// <summary>How often a step that waits for its driver's consumer checks again.</summary>
    public TimeSpan DriverWaitInterval { get; set; } = TimeSpan.FromSeconds(1);
}
