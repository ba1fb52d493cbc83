namespace Conveyor.Grains.Runs;

/// <summary>Run engine settings (configuration section <c>Conveyor:Runs</c>).</summary>
public sealed class RunEngineOptions
{
    /// <summary>Configuration section.</summary>
    public const string Section = "Conveyor:Runs";

    /// <summary>
    /// Period of the durable reminder that wakes a run with pending work after its silo died: the longest a run can
    /// sit unattended before another silo resumes it (plus the reminder service's own latency).
    /// </summary>
    public TimeSpan KeepAlivePeriod { get; set; } = TimeSpan.FromMinutes(1);
}
