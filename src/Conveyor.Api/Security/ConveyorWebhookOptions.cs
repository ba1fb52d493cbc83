using System.ComponentModel.DataAnnotations;

namespace Conveyor.Api.Security;

/// <summary>Webhook deliveries (section <c>Conveyor:Webhooks</c>).</summary>
public sealed class ConveyorWebhookOptions
{
    /// <summary>
    /// How far a timestamped delivery's <c>X-Conveyor-Timestamp</c> may be from the server's clock, either way; also how
    /// long a signed body is remembered, so a replay of it within this window starts nothing.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:10", "1.00:00:00")]
    public TimeSpan SignatureTolerance { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Deliveries one webhook accepts per second on average (across the cluster); 0 turns the limit off.</summary>
    [Range(0, 1_000_000)]
    public int DeliveriesPerSecond { get; set; } = 10;

    /// <summary>Deliveries one webhook accepts in a burst before the per-second rate applies.</summary>
    [Range(1, 1_000_000)]
    public int DeliveryBurst { get; set; } = 50;
}
