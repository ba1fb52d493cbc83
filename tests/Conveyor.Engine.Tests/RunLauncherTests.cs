using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Runs;

namespace Conveyor.Engine.Tests;

/// <summary>The ids RunLauncher gives runs: a repeated trigger event names the run it started, as before it existed.</summary>
public sealed class RunLauncherTests
{
    private static RunRequest Request(string trigger, string? triggerId) =>
        new("team", new PipelineSpec { Name = "ship" }, new ResourceData { Name = "web", Type = "app" }, trigger) { TriggerId = triggerId };

    [Fact]
    public void Ids_are_derived_from_the_trigger_event_exactly_as_each_trigger_derived_them_before()
    {
        // The parts each trigger passed to RunIds.Derive before RunLauncher owned the rule.
        Assert.Equal(RunIds.Derive("manual", "team", "ship", "release-1"), RunLauncher.RunIdFor(Request(RunTriggers.Manual, "release-1")));
        Assert.Equal(RunIds.Derive("webhook", "team", "ship", "github", "d-42"), RunLauncher.RunIdFor(Request(RunTriggers.Webhook("github"), "d-42")));
        Assert.Equal(
            RunIds.Derive("schedule", "team", "ship", "nightly", "2026-01-01T03:00:00Z"),
            RunLauncher.RunIdFor(Request(RunTriggers.Schedule("nightly"), "2026-01-01T03:00:00Z")));
    }

    [Fact]
    public void A_trigger_without_an_event_id_gets_a_new_run_every_time()
    {
        Assert.NotEqual(RunLauncher.RunIdFor(Request(RunTriggers.Manual, null)), RunLauncher.RunIdFor(Request(RunTriggers.Manual, null)));
        Assert.NotEqual(RunLauncher.RunIdFor(Request(RunTriggers.Manual, "a")), RunLauncher.RunIdFor(Request(RunTriggers.Webhook("a"), "a")));
    }
}
