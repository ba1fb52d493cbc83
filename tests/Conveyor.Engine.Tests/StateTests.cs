using System.Text.Json;
using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Runs.Engine;

namespace Conveyor.Engine.Tests;

/// <summary>
/// What the machine keeps and derives: a reload (a new machine over the stored state) carries on exactly; a result's
/// data is held once; records of earlier versions are read; each transition is reported once.
/// </summary>
public sealed class StateTests
{
    [Fact]
    public void A_reload_rebuilds_readiness_due_times_and_the_outbox_of_unconfirmed_dispatches()
    {
        var h = new RunHarness(RunHarness.Pipeline("a b/r2 c/@late join:a,b,c"));
        h.MissingDrivers.Add("late");
        h.Start();
        h.Result("a", 1000);
        h.Result("b", 2000, success: false);
        h.Reload();

        // The unconfirmed dispatch of c goes out again, and b's retry is armed from state.
        h.MissingDrivers.Clear();
        Assert.Equal(["dispatch c#1", "arm @3000"], h.Tick(2500));
        Assert.Equal(["persist", "dispatch b#2", "arm none"], h.Tick(3000));
        h.Reload();
        h.Result("c", 4000);
        Assert.Equal(StepStatus.Pending, h.Status("join"));
        Assert.Equal(["persist", "dispatch join#1", "arm none"], h.Result("b", 5000));
    }

    [Fact]
    public void A_result_is_held_once_in_its_attempt_and_the_output_and_driver_result_are_derived_from_it()
    {
        var h = new RunHarness(RunHarness.Pipeline("a b:a"));
        h.Start();
        h.Result("a", 1000, data: """{"n":1}""", message: "ok");
        var a = h.Machine.Step("a");
        Assert.Equal("""{"n":1}""", a.Current!.Data);
        Assert.Equal("""{"n":1}""", a.Output);
        Assert.Null(a.LegacyOutput);
        Assert.Null(a.LegacyResultJson);
        Assert.Equal("""{"success":true,"message":"ok","data":{"n":1},"driver":"d-a"}""", h.Machine.DriverResults()["driverresults.d-a"]);
        h.Reload();
        Assert.Equal("""{"success":true,"message":"ok","data":{"n":1},"driver":"d-a"}""", h.Machine.DriverResults()["driverresults.d-a"]);
    }

    [Fact]
    public void A_failed_result_is_the_driver_result_but_no_output()
    {
        var h = new RunHarness(RunHarness.Pipeline("a/allow b:a"));
        h.Start();
        h.Result("a", 1000, success: false, data: """{"exit":2}""", message: "exit 2");
        Assert.Null(h.Machine.Step("a").Output);
        Assert.Equal("""{"success":false,"message":"exit 2","data":{"exit":2},"driver":"d-a"}""", h.Machine.DriverResults()["driverresults.d-a"]);
    }

    [Fact]
    public void The_latest_result_of_each_driver_is_its_driverresults_entry()
    {
        var h = new RunHarness(RunHarness.Pipeline("a/@shared b:a/@shared c:b"));
        h.Start();
        h.Result("a", 1000, data: """{"from":"a"}""");
        h.Result("b", 2000, data: """{"from":"b"}""");
        h.Reload();
        var results = h.Machine.DriverResults();
        Assert.Contains("\"from\":\"b\"", results["driverresults.shared"], StringComparison.Ordinal);
        var payload = JsonDocument.Parse(DispatchMessages.Payload(h.Run.Plan, results)).RootElement;
        Assert.Equal(results["driverresults.shared"], payload.GetProperty("metadata").GetProperty("driverresults.shared").GetString());
    }

    [Fact]
    public void A_step_stored_with_its_output_and_result_beside_its_attempts_is_read_and_never_written_that_way_again()
    {
        var legacyJson = """{"success":true,"message":"ok","data":{"n":1},"driver":"d-a"}""";
        var run = new RunHarness(RunHarness.Pipeline("a b:a")).Run;
        run.Status = RunStatus.Running;
        run.Committed = true;
        run.Completions = 1;
        run.IndexedStatus = RunStatus.Running;
        run.ReportedStatus = RunStatus.Running;
        run.ReportedRunAttempt = 1;
        // As versions up to f3e5ad6 stored it: the data three times.
        run.Steps[0] = new StepState
        {
            Id = "a",
            Status = StepStatus.Succeeded,
            CompletionOrder = 1,
            LegacyOutput = """{"n":1}""",
            LegacyResultJson = legacyJson,
            Attempts = [new AttemptState { Number = 1, Published = true, Success = true, Message = "ok", Data = """{"n":1}""", StartReported = true, FinishReported = true }],
        };
        // Older still: an output only the step held.
        run.Steps[1] = new StepState
        {
            Id = "b",
            Status = StepStatus.Succeeded,
            LegacyOutput = """{"m":2}""",
            Attempts = [new AttemptState { Number = 1, Published = true, Success = true, StartReported = true, FinishReported = true }],
        };

        var machine = new RunStateMachine(run, new RunMachineOptions { EmitEvents = false });
        Assert.Equal(legacyJson, machine.DriverResults()["driverresults.d-a"]);
        Assert.Equal("""{"n":1}""", machine.Step("a").Output);
        Assert.Equal("""{"m":2}""", machine.Step("b").Output);
        Assert.All(run.Steps, s => Assert.Null(s.LegacyOutput));
        Assert.All(run.Steps, s => Assert.Null(s.LegacyResultJson));
    }

    [Fact]
    public void Each_transition_is_reported_once_whatever_reloads_in_between()
    {
        var h = new RunHarness(RunHarness.Pipeline("a/r2 b:a"), new RunMachineOptions { EmitEvents = true });
        h.Start();
        h.Reload();
        h.Tick(10);
        h.Result("a", 1000, success: false);
        h.Reload();
        h.Tick(2000);
        h.Reload();
        h.Result("a", 3000);
        h.Result("b", 4000);
        var id = RunHarness.RunId;
        Assert.Equal(
            [
                $"{id}:1:pipelinerun.queued", $"{id}:1:pipelinerun.started", $"{id}:a:1:taskrun.started",
                $"{id}:a:1:taskrun.finished",
                $"{id}:a:2:taskrun.started",
                $"{id}:a:2:taskrun.finished", $"{id}:b:1:taskrun.started",
                $"{id}:b:1:taskrun.finished", $"{id}:1:pipelinerun.finished",
            ],
            h.PublishedEvents);
        Assert.Equal(
            ["RunStartedReport", "StepFinishedReport", "StepFinishedReport", "StepFinishedReport", "RunFinishedReport"],
            h.Reports.Select(r => r.GetType().Name));
    }
}
