using System.Text.Json;
using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Flow;
using Conveyor.Grains.Runs.Engine;

namespace Conveyor.Engine.Tests;

/// <summary>What a driver receives, byte for byte, and what a run asks its queue for.</summary>
public sealed class DispatchMessageTests
{
    [Fact]
    public void A_step_message_carries_step_attempt_token_variables_merged_params_and_its_dependencies_outputs()
    {
        var pipeline = RunHarness.Pipeline("build deploy:build");
        pipeline.Variables = new() { ["REGION"] = "eu" };
        pipeline.Steps[1].Params = """{"target":"linux","level":1}""";
        var h = new RunHarness(pipeline, runParams: """{"level":2,"extra":"yes"}""");
        h.Start();
        h.Result("build", 1000, data: """{"image":"x"}""");

        var message = DispatchMessages.Build(h.Machine.Graph, h.Machine.Step("deploy"), 1, "{}", "tok");

        var run = RunHarness.RunId.ToString();
        Assert.Equal(
            $$"""{"event":"process","payload":"{}","id":"{{MessageIds.ForDispatch(run, "deploy", 1)}}","run_id":"{{run}}","step":"deploy","attempt":1,"step_token":"tok",""" +
            "\"variables\":{\"REGION\":\"eu\"},\"params\":{\"target\":\"linux\",\"level\":2,\"extra\":\"yes\"},\"inputs\":{\"build\":{\"image\":\"x\"}}}",
            JsonSerializer.Serialize(message, ConveyorJson.Context.DriverMessage));
    }

    [Fact]
    public void A_root_step_without_extras_gets_the_original_create_message_plus_step_and_attempt()
    {
        var h = new RunHarness(RunHarness.Pipeline("build"));
        var message = DispatchMessages.Build(h.Machine.Graph, h.Machine.Step("build"), 3, "{}", null);
        var run = RunHarness.RunId.ToString();
        Assert.Equal(
            $$"""{"event":"create","payload":"{}","id":"{{MessageIds.ForDispatch(run, "build", 3)}}","run_id":"{{run}}","step":"build","attempt":3}""",
            JsonSerializer.Serialize(message, ConveyorJson.Context.DriverMessage));
    }

    public static TheoryData<string?, string?, string?> Merges => new()
    {
        { null, null, null },
        { """{"a":1}""", null, """{"a":1}""" },
        { null, """{"a":2}""", """{"a":2}""" },
        { """{"a":1,"b":{"c":1}}""", """{"b":{"d":2},"e":[1]}""", """{"a":1,"b":{"d":2},"e":[1]}""" },
    };

    [Theory]
    [MemberData(nameof(Merges))]
    public void Run_params_are_laid_over_step_params_key_by_key(string? step, string? run, string? merged)
    {
        Assert.Equal(merged, DispatchMessages.MergeParams(step, run)?.GetRawText());
    }

    [Fact]
    public void The_payload_is_the_resource_with_the_driver_results_so_far_in_its_metadata()
    {
        var h = new RunHarness(RunHarness.Pipeline("a b:a"));
        h.Start();
        h.Result("a", 1000, data: """{"n":1}""", message: "done");
        Assert.Equal(
            """{"id":"r-1","name":"web","resource":"app","metadata":{"driverresults.d-a":"{\u0022success\u0022:true,\u0022message\u0022:\u0022done\u0022,\u0022data\u0022:{\u0022n\u0022:1},\u0022driver\u0022:\u0022d-a\u0022}","version":"1"},"spec":{"image":"nginx"}}""",
            DispatchMessages.Payload(h.Run.Plan, h.Machine.DriverResults()));
    }

    public static TheoryData<int?, int?, string?, GroupConflictPolicy, string?, string?> Admissions => new()
    {
        // pipeline limit, namespace limit, group key, on conflict → queue (null: no admission), group value
        { null, null, null, GroupConflictPolicy.Queue, null, null },
        { 2, null, null, GroupConflictPolicy.Queue, "team/p", null },
        { null, 5, null, GroupConflictPolicy.Queue, "team", null },
        { 2, 5, null, GroupConflictPolicy.Queue, "team", null },
        { null, null, "spec.image", GroupConflictPolicy.CancelInProgress, "team/p", "nginx" },
    };

    [Theory]
    [MemberData(nameof(Admissions))]
    public void A_run_asks_its_queue_for_a_slot_only_when_a_limit_applies(int? pipelineLimit, int? namespaceLimit, string? group, GroupConflictPolicy onConflict, string? queue, string? groupValue)
    {
        var pipeline = RunHarness.Pipeline("a", concurrency: pipelineLimit);
        pipeline.ConcurrencyGroup = group is null ? null : new ConcurrencyGroupSpec { Key = group, OnConflict = onConflict };
        var h = new RunHarness(pipeline, ns: "team");
        var flow = new FlowControlOptions { NamespaceLimits = namespaceLimit is { } n ? new() { ["team"] = n } : [] };

        var request = AdmissionRule.For(h.Run, flow, out var key);

        Assert.Equal(queue, request is null ? null : key);
        Assert.Equal(queue is null ? null : flow.QueueKeyFor("team", "p"), request is null ? null : key);
        Assert.Equal(groupValue, request?.Group);
        Assert.Equal(onConflict == GroupConflictPolicy.CancelInProgress, request?.CancelInProgress ?? false);
        Assert.Equal(namespaceLimit, request?.NamespaceLimit);
    }

    [Fact]
    public void A_queued_run_stays_with_its_queue_when_the_limits_change()
    {
        var h = new RunHarness(RunHarness.Pipeline("a"));
        h.Run.AdmissionKey = "team";
        var request = AdmissionRule.For(h.Run, new FlowControlOptions(), out var key);
        Assert.Equal("team", key);
        Assert.NotNull(request);
    }
}
