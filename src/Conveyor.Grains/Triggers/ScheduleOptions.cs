namespace Conveyor.Grains.Triggers;

/// <summary>Schedule settings (configuration section <c>Conveyor:Schedules</c>).</summary>
public sealed class ScheduleOptions
{
    /// <summary>Configuration section.</summary>
    public const string Section = "Conveyor:Schedules";

    /// <summary>
    /// Period of the durable reminder that brings a pipeline's schedules back on another silo after theirs died: the
    /// longest a tick can be late after a crash (plus the reminder service's own latency).
    /// </summary>
    public TimeSpan WakePeriod { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// How late an occurrence may be fired and still count as on time. An occurrence later than this is missed:
    /// the schedule's <c>missedFire</c> policy decides.
    /// </summary>
    public TimeSpan MisfireGrace { get; set; } = TimeSpan.FromSeconds(30);
}
