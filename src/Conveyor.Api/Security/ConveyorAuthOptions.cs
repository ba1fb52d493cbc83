using System.ComponentModel.DataAnnotations;

namespace Conveyor.Api.Security;

/// <summary>API authentication (section <c>Conveyor:Auth</c>).</summary>
public sealed class ConveyorAuthOptions
{
    /// <summary>
    /// Whether every route but health, the OpenAPI document and signed routes needs an API key. Null (default): on in
    /// cluster mode, off in single-node mode.
    /// </summary>
    public bool? Enabled { get; set; }

    /// <summary>
    /// An admin key (<c>cvk_&lt;id&gt;_&lt;secret&gt;</c>) to create at start when it does not exist. When empty, the first
    /// start with authentication on generates one and logs it once. Never logged.
    /// </summary>
    public string? BootstrapKey { get; set; }

    /// <summary>
    /// Write requests (POST, PUT, PATCH, DELETE) one key may make per second on average; 0 turns the limit off. With
    /// <see cref="WriteRateLimitScope.Cluster"/> the limit holds for the whole cluster; with
    /// <see cref="WriteRateLimitScope.Silo"/> (or while Redis does not answer) for each silo separately, so N silos then
    /// allow up to N times it.
    /// </summary>
    [Range(0, 1_000_000)]
    public int WriteRequestsPerSecond { get; set; } = 50;

    /// <summary>Write requests one key may make in a burst before the per-second rate applies.</summary>
    [Range(1, 1_000_000)]
    public int WriteBurst { get; set; } = 100;

    /// <summary>Where the write rate limit's buckets live: shared in Redis (default) or in each silo's memory.</summary>
    public WriteRateLimitScope WriteRateLimitScope { get; set; } = WriteRateLimitScope.Cluster;

    /// <summary>Redacts the bootstrap key.</summary>
    public override string ToString() =>
        $"Enabled={Enabled}, BootstrapKey={(string.IsNullOrEmpty(BootstrapKey) ? "" : "***")}, WriteRequestsPerSecond={WriteRequestsPerSecond}, WriteBurst={WriteBurst}, WriteRateLimitScope={WriteRateLimitScope}";
}

/// <summary>Where the per-key write rate limit is counted.</summary>
public enum WriteRateLimitScope
{
    /// <summary>
    /// One bucket per key for the whole cluster, in Conveyor's Redis (one round trip per write). When Redis does not
    /// answer, each silo falls back to its own bucket (fail-open to the per-silo limit).
    /// </summary>
    Cluster = 0,

    /// <summary>One bucket per key in each silo's memory: no round trip, but N silos allow up to N times the limit.</summary>
    Silo = 1,
}

/// <summary>The resolved authentication settings the request pipeline reads.</summary>
internal sealed class ConveyorAuthSettings
{
    /// <summary>Whether API keys are required.</summary>
    public bool Enabled { get; init; }

    /// <summary>The configured options.</summary>
    public ConveyorAuthOptions Options { get; init; } = new();
}
