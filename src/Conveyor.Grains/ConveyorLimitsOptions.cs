using System.ComponentModel.DataAnnotations;

namespace Conveyor.Grains;

/// <summary>
/// Limits on what clients and drivers may make the engine keep or do (configuration section <c>Conveyor:Limits</c>).
/// A request beyond one is refused with a problem that names the setting (400, or 413 for sizes).
/// </summary>
public sealed class ConveyorLimitsOptions
{
    /// <summary>Configuration section.</summary>
    public const string Section = "Conveyor:Limits";

    /// <summary>Most steps in one pipeline.</summary>
    [Range(1, 100_000)]
    public int MaxStepsPerPipeline { get; set; } = 1000;

    /// <summary>Most schedules in one pipeline.</summary>
    [Range(0, 10_000)]
    public int MaxSchedulesPerPipeline { get; set; } = 20;

    /// <summary>The shortest time between two occurrences of a schedule's cron expression.</summary>
    public TimeSpan MinScheduleInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Most UTF-8 bytes of a driver result's <c>data</c>: a larger result fails its attempt.</summary>
    [Range(1, int.MaxValue)]
    public int MaxResultDataBytes { get; set; } = 64 * 1024;

    /// <summary>Most UTF-8 bytes of a resource's <c>spec</c> (as JSON).</summary>
    [Range(1, int.MaxValue)]
    public int MaxResourceSpecBytes { get; set; } = 256 * 1024;

    /// <summary>Versions of one resource kept (the oldest go first); a deleted resource keeps none.</summary>
    [Range(1, 100_000)]
    public int KeepResourceVersions { get; set; } = 50;

    /// <summary>Log streams (Server-Sent Events) one API key may hold open at once, in each silo (requests without a key count against <see cref="MaxStreamsPerSilo"/> only).</summary>
    [Range(1, 1_000_000)]
    public int MaxStreamsPerKey { get; set; } = 10;

    /// <summary>Log streams (Server-Sent Events) one silo serves at once.</summary>
    [Range(1, 1_000_000)]
    public int MaxStreamsPerSilo { get; set; } = 1000;

    /// <summary>
    /// Read requests (GET, HEAD) one API key may make per second on average, in each silo; 0 turns the limit off.
    /// Requests without a key (authentication off) are not limited.
    /// </summary>
    [Range(0, 1_000_000)]
    public int ReadRequestsPerSecond { get; set; } = 200;

    /// <summary>Read requests one API key may make in a burst before <see cref="ReadRequestsPerSecond"/> applies.</summary>
    [Range(1, 1_000_000)]
    public int ReadBurst { get; set; } = 400;
}
