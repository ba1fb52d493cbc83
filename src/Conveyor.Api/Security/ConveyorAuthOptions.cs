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

    /// <summary>Write requests (POST, PUT, PATCH, DELETE) one key may make per second on average; 0 turns the limit off.</summary>
    [Range(0, 1_000_000)]
    public int WriteRequestsPerSecond { get; set; } = 50;

    /// <summary>Write requests one key may make in a burst before the per-second rate applies.</summary>
    [Range(1, 1_000_000)]
    public int WriteBurst { get; set; } = 100;

    /// <summary>Redacts the bootstrap key.</summary>
    public override string ToString() =>
        $"Enabled={Enabled}, BootstrapKey={(string.IsNullOrEmpty(BootstrapKey) ? "" : "***")}, WriteRequestsPerSecond={WriteRequestsPerSecond}, WriteBurst={WriteBurst}";
}

/// <summary>The resolved authentication settings the request pipeline reads.</summary>
public sealed class ConveyorAuthSettings
{
    /// <summary>Whether API keys are required.</summary>
    public bool Enabled { get; init; }

    /// <summary>The configured options.</summary>
    public ConveyorAuthOptions Options { get; init; } = new();
}
