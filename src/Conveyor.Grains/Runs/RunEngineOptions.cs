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

    /// <summary>
    /// Timeout of one attempt of a step that sets no <c>timeout</c>, so a result that never comes (a driver that died
    /// with the step, a lost message) cannot hold a run and its concurrency slot for ever; <see cref="TimeSpan.Zero"/>:
    /// none. Drivers built on the SDK heart-beat, which replaces it with <see cref="HeartbeatLease"/>.
    /// </summary>
    public TimeSpan DefaultAttemptTimeout { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// How long one heartbeat of a driver keeps an attempt of a step without a <c>timeout</c> alive (and at least three
    /// of the driver's heartbeat intervals): a driver that stops heart-beating loses the attempt this long after.
    /// </summary>
    public TimeSpan HeartbeatLease { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// The longest an attempt of a step without a <c>timeout</c> may run however its driver heart-beats (the SDK
    /// heart-beats for a reconcile that hangs, too); <see cref="TimeSpan.Zero"/>: no cap. A step's own <c>timeout</c>
    /// is not capped.
    /// </summary>
    public TimeSpan MaxAttemptDuration { get; set; } = TimeSpan.FromHours(24);

    /// <summary>
    /// How long a finished run stays in memory once nothing is left to do for it (its events published, its index entry
    /// filed), so the reads that follow its end cost no storage read; then it leaves, and a later read loads it again.
    /// <see cref="TimeSpan.Zero"/>: at once. Memory held by finished runs is about this times the rate runs finish.
    /// </summary>
    public TimeSpan FinishedRunResidence { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long a finished run is kept (with its index entries and logs) before retention archives and deletes it;
    /// <see cref="TimeSpan.Zero"/> keeps runs forever. A pipeline's <c>retention.period</c> and
    /// <see cref="NamespaceRetention"/> override it.
    /// </summary>
    public TimeSpan RetentionPeriod { get; set; } = TimeSpan.FromDays(30);

    /// <summary>Retention period by namespace (<c>Conveyor:Runs:NamespaceRetention:team-a=7.00:00:00</c>; zero: forever).</summary>
    public Dictionary<string, TimeSpan> NamespaceRetention { get; set; } = new(StringComparer.Ordinal);

    /// <summary>How often expired runs are looked for and deleted (also the delay before a failed deletion is tried again).</summary>
    public TimeSpan RetentionSweepInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Expired runs deleted concurrently by the sweeper.</summary>
    public int RetentionConcurrency { get; set; } = 8;
}
