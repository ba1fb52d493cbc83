using System.Text.Json;
using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Runs.Engine;

namespace Conveyor.Engine.Tests;

/// <summary>Matrix steps: one attempt-tracked instance per combination; dependents wait for all and get the list of outputs.</summary>
public sealed class MatrixTests
{
    private static PipelineSpec TwoByTwo(string steps = "build test:build fanin:test", int? maxParallel = null) =>
        RunHarness.Pipeline(steps).With("test", s => s.Matrix = new MatrixSpec
        {
            Axes = [new MatrixAxis { Name = "os", Values = ["\"linux\"", "\"windows\""] }, new MatrixAxis { Name = "arch", Values = ["\"x64\"", "\"arm64\""] }],
            MaxParallel = maxParallel,
        });

    [Fact]
    public void A_two_by_two_matrix_dispatches_four_instances_with_their_combinations_and_the_fan_in_gets_four_outputs()
    {
        var h = new RunHarness(TwoByTwo(), runParams: """{"version":"1.2"}""");
        h.Start();
        Assert.Equal(["persist", "dispatch test[0]#1", "dispatch test[1]#1", "dispatch test[2]#1", "dispatch test[3]#1", "arm none"], h.Result("build", 1000));
        Assert.Equal(StepStatus.Running, h.Status("test"));

        var combos = Enumerable.Range(0, 4).Select(i =>
            DispatchMessages.Build(h.Machine.Graph, h.Machine.Step($"test[{i}]"), 1, "{}", null).Params!.Value.GetProperty("matrix").GetRawText()).ToList();
        Assert.Equal(
            ["""{"os":"linux","arch":"x64"}""", """{"os":"linux","arch":"arm64"}""", """{"os":"windows","arch":"x64"}""", """{"os":"windows","arch":"arm64"}"""],
            combos);
        var message = DispatchMessages.Build(h.Machine.Graph, h.Machine.Step("test[2]"), 1, "{}", null);
        Assert.Equal("1.2", message.Params!.Value.GetProperty("version").GetString());
        Assert.Equal("test[2]", message.Step);

        for (var i = 3; i >= 1; i--)
        {
            Assert.Equal(["persist", "arm none"], h.Result($"test[{i}]", 2000 + i, data: $$"""{"n":{{i}}}"""));
        }

        Assert.Equal(["persist", "dispatch fanin#1", "arm none"], h.Result("test[0]", 3000, data: """{"n":0}"""));
        Assert.Equal(StepStatus.Succeeded, h.Status("test"));
        var fanIn = DispatchMessages.Build(h.Machine.Graph, h.Machine.Step("fanin"), 1, "{}", null);
        Assert.Equal("""[{"n":0},{"n":1},{"n":2},{"n":3}]""", fanIn.Inputs!["test"].GetRawText());
    }

    [Fact]
    public void Max_parallel_holds_instances_back_until_others_end()
    {
        var h = new RunHarness(TwoByTwo(maxParallel: 2));
        h.Start();
        Assert.Equal(["persist", "dispatch test[0]#1", "dispatch test[1]#1", "arm none"], h.Result("build", 1000));
        Assert.Equal(["persist", "dispatch test[2]#1", "arm none"], h.Result("test[1]", 2000));
        Assert.Equal(["persist", "dispatch test[3]#1", "arm none"], h.Result("test[0]", 3000));
        h.Result("test[2]", 4000);
        Assert.Contains("dispatch fanin#1", h.Result("test[3]", 5000));
    }

    [Fact]
    public void An_instance_is_retried_on_its_own_and_its_failure_fails_the_step_and_cancels_its_siblings()
    {
        var h = new RunHarness(TwoByTwo().With("test", s => s.Retry = new RetryPolicy { MaxAttempts = 2, InitialDelay = TimeSpan.FromSeconds(1), Jitter = 0 }));
        h.Start();
        h.Result("build", 1000);
        Assert.Equal(["persist", "arm @3000"], h.Result("test[1]", 2000, success: false));
        Assert.Equal(["persist", "dispatch test[1]#2", "arm none"], h.Tick(3000));
        Assert.Equal(1, h.Machine.Step("test[0]").Current!.Number);
        h.Result("test[0]", 3500);
        Assert.Equal(["persist", "index", "cancel test[2]#1", "cancel test[3]#1", "stop-keepalive"], h.Result("test[1]", 4000, success: false, message: "arm64 broke"));
        Assert.Equal("build=Succeeded test=Failed fanin=Skipped", h.Statuses());
        Assert.Equal("instance test[1] failed: arm64 broke", h.Machine.Step("test").Reason);
        Assert.Equal(RunStatus.Failed, h.Run.Status);
    }

    [Fact]
    public void A_retried_run_reruns_only_the_instances_that_did_not_succeed()
    {
        var h = new RunHarness(TwoByTwo(), RunHarness.WithFlow());
        h.Start();
        h.Result("build", 1000);
        h.Result("test[0]", 1100, data: """{"n":0}""");
        h.Result("test[1]", 1200, success: false);
        Assert.Equal(RunStatus.Failed, h.Run.Status);
        Assert.Equal(["before register-keepalive", "persist", "index", "dispatch test[1]#2", "dispatch test[2]#2", "dispatch test[3]#2", "arm none"], h.Do(new RetryRun(null), 2000));
        Assert.Equal(StepStatus.Succeeded, h.Status("test[0]"));
        h.Result("test[1]", 3000, data: """{"n":1}""");
        h.Result("test[2]", 3000, data: """{"n":2}""");
        Assert.Contains("dispatch fanin#1", h.Result("test[3]", 3000, data: """{"n":3}"""));
        Assert.Equal("""[{"n":0},{"n":1},{"n":2},{"n":3}]""", h.Machine.Step("test").Output);
    }

    [Fact]
    public void Cancelling_the_run_cancels_every_instance_in_flight()
    {
        var h = new RunHarness(TwoByTwo(maxParallel: 2));
        h.Start();
        h.Result("build", 1000);
        h.Result("test[0]", 1500);
        Assert.Equal(["persist", "index", "cancel test[1]#1", "cancel test[2]#1", "stop-keepalive"], h.Do(new CancelRun("stop"), 2000));
        Assert.Equal(StepStatus.Skipped, h.Status("test[3]"));
        Assert.Equal(StepStatus.Cancelled, h.Status("test"));
    }

    [Fact]
    public void A_matrix_from_a_dependencys_list_has_an_instance_per_element()
    {
        var pipeline = RunHarness.Pipeline("plan deploy:plan").With("deploy", s => s.Matrix = new MatrixSpec { FromInput = "plan.targets" });
        var h = new RunHarness(pipeline);
        h.Start();
        Assert.Equal(["persist", "dispatch deploy[0]#1", "dispatch deploy[1]#1", "arm none"], h.Result("plan", 1000, data: """{"targets":[{"region":"eu"},"us"]}"""));
        Assert.Equal("""{"region":"eu"}""", DispatchMessages.Build(h.Machine.Graph, h.Machine.Step("deploy[0]"), 1, "{}", null).Params!.Value.GetProperty("matrix").GetRawText());
        Assert.Equal("us", DispatchMessages.Build(h.Machine.Graph, h.Machine.Step("deploy[1]"), 1, "{}", null).Params!.Value.GetProperty("matrix").GetString());
    }

    public static TheoryData<string?, string, string> BadInputs => new()
    {
        { """{"targets":"eu"}""", "Failed", "matrix fromInput plan.targets: string, not a list" },
        { """{"other":1}""", "Failed", "matrix fromInput plan.targets: the output has no plan.targets" },
        { null, "Failed", "matrix fromInput plan.targets: step plan has no output" },
        { """{"targets":[]}""", "Succeeded", "" },
    };

    [Theory]
    [MemberData(nameof(BadInputs))]
    public void A_matrix_whose_list_is_missing_fails_and_an_empty_one_succeeds_with_no_outputs(string? output, string status, string reason)
    {
        var pipeline = RunHarness.Pipeline("plan deploy:plan after:deploy").With("deploy", s => s.Matrix = new MatrixSpec { FromInput = "plan.targets" });
        var h = new RunHarness(pipeline);
        h.Start();
        h.Result("plan", 1000, data: output);
        Assert.Equal(status, h.Status("deploy").ToString());
        Assert.Equal(reason, h.Machine.Step("deploy").Reason ?? "");
        if (status == "Succeeded")
        {
            Assert.Equal("[]", h.Machine.Step("deploy").Output);
            Assert.Equal(StepStatus.Dispatched, h.Status("after"));
        }
    }

    [Fact]
    public void Instances_survive_a_reload_with_their_attempts_and_take_results_by_their_id()
    {
        var h = new RunHarness(TwoByTwo());
        h.Start();
        h.Result("build", 1000);
        h.Result("test[2]", 1500);
        h.Reload();
        Assert.Equal(4, h.Machine.Step("test").Instances!.Count);
        h.Result("test[0]", 2000);
        Assert.Equal(ApplyOutcome.Applied, h.Outcome);
        h.Result("test[2]", 2100);
        Assert.Equal(ApplyOutcome.Duplicate, h.Outcome);
        h.Result("test[1]", 2200);
        Assert.Contains("dispatch fanin#1", h.Result("test[3]", 2300));
    }

    [Fact]
    public void The_matrix_step_itself_takes_no_result_and_an_original_driver_result_goes_to_an_instance()
    {
        var h = new RunHarness(TwoByTwo());
        h.Start();
        h.Result("build", 1000);
        h.Result("test", 1500, driver: "d-test", attempt: 1);
        Assert.Equal(ApplyOutcome.UnknownStep, h.Outcome);
        h.Result("ignored", 1600, original: true, driver: "d-test");
        Assert.Equal(ApplyOutcome.Applied, h.Outcome);
        Assert.Equal(StepStatus.Succeeded, h.Status("test[0]"));
    }

    [Fact]
    public void A_change_to_an_instance_is_written_with_its_step()
    {
        var h = new RunHarness(TwoByTwo());
        h.Start();
        h.Result("build", 1000);
        h.Machine.Stored();
        h.Result("test[1]", 2000);
        Assert.Equal(["test"], h.Machine.ChangedSteps.Select(s => s.Id));
    }

    [Fact]
    public void Instances_report_their_attempts_as_task_runs()
    {
        var h = new RunHarness(TwoByTwo(), new RunMachineOptions { EmitEvents = true, EmitRunEvents = false });
        h.Start();
        h.Result("build", 1000);
        h.Result("test[1]", 2000);
        Assert.Contains($"{RunHarness.RunId}:test[1]:1:taskrun.started", h.PublishedEvents);
        Assert.Contains($"{RunHarness.RunId}:test[1]:1:taskrun.finished", h.PublishedEvents);
        Assert.Equal(1, h.PublishedEvents.Count(e => e.EndsWith("test[1]:1:taskrun.started", StringComparison.Ordinal)));
        _ = JsonSerializer.Serialize(h.Run.Steps);
    }
}
