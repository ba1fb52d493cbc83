namespace Conveyor.Grains.Resources;

/// <summary>Resource settings (configuration section <c>Conveyor:Resources</c>).</summary>
public sealed class ResourceOptions
{
    /// <summary>Configuration section.</summary>
    public const string Section = "Conveyor:Resources";

    /// <summary>
    /// How long a resource stays in memory after its last call; its state is in storage, and the next call loads it
    /// again. Without it a resource stays for Orleans' default of 15 minutes, and resources created at a high rate (one
    /// per build) pile up in the silo. Orleans looks for idle activations once a minute, so a resource leaves between
    /// this and a minute later.
    /// </summary>
    public TimeSpan IdleResidence { get; set; } = TimeSpan.FromMinutes(2);
}
