using System.ComponentModel.DataAnnotations;

namespace Conveyor.Grains.Events;

/// <summary>The run events feed (configuration section <c>Conveyor:RunEvents</c>): every run and step transition, in JetStream.</summary>
public sealed class RunEventsOptions
{
    /// <summary>Configuration section.</summary>
    public const string Section = "Conveyor:RunEvents";

    /// <summary>Whether runs record their transitions for the feed (on by default; off, <c>/runs/events</c> shows nothing new).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>How long transitions stay in the <c>conveyor-runs</c> stream (a client can resume within it).</summary>
    public TimeSpan Retention { get; set; } = TimeSpan.FromDays(1);

    /// <summary>
    /// How long JetStream remembers a batch's id: a batch published again within it (a silo that died between
    /// publishing and storing that it did) is stored once. At most <see cref="Retention"/>.
    /// </summary>
    public TimeSpan DuplicateWindow { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Most bytes the stream keeps (oldest dropped first); 0: no limit but the retention.</summary>
    [Range(0, long.MaxValue)]
    public long MaxBytes { get; set; }
}
