using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Runs.Engine;

namespace Conveyor.Grains.Runs;

/// <summary>
/// What users and other runs do to a run (approvals, pause and resume, a child's end), and carrying out the effects
/// of sub-pipeline steps: starting, asking and cancelling child runs, and telling a parent.
/// </summary>
internal sealed partial class PipelineRunGrain
{
    /// <inheritdoc />
    public Task<RunState> ApproveAsync(string step, bool approved, string? by, string? comment) =>
        CommandAsync(new ApproveStep(step, approved, by, comment));

    /// <inheritdoc />
    public Task<RunState> PauseAsync(string? by) => CommandAsync(new PauseRun(by));

    /// <inheritdoc />
    public Task<RunState> ResumeAsync(string? by) => CommandAsync(new ResumeRun(by));

    /// <inheritdoc />
    public async Task ChildEndedAsync(string step, Guid childRunId, RunStatus status, string message, string? outputs)
    {
        await EnterAsync();
        try
        {
            if (_exists)
            {
                await DecideAsync(new ChildEnded(step, childRunId, status, message, outputs));
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>A command on an existing run; a refused one is a conflict.</summary>
    private async Task<RunState> CommandAsync(RunInput input)
    {
        await EnterAsync();
        try
        {
            EnsureExists();
            await DecideAsync(input);
            return Run;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Starts a sub-pipeline step's child through the one run-starting owner, under the id the machine derived (so a
    /// repeat answers the same child). A pipeline that is gone or runs for another resource type fails the step; a
    /// child that ended at once (every step skipped) is applied now.
    /// </summary>
    private async Task StartChildAsync(StartChild start)
    {
        var run = Run;
        var ns = run.Plan.Namespace;
        CreateRunResult result;
        try
        {
            var pipeline = await grains.GetGrain<IPipelineGrain>(Names.PipelineKey(ns, start.Pipeline)).GetAsync();
            if (pipeline is null || pipeline.ResourceType != run.Plan.Resource.Type)
            {
                var why = pipeline is null
                    ? $"pipeline {start.Pipeline} not found in namespace {ns}"
                    : $"pipeline {start.Pipeline} runs for resource type {pipeline.ResourceType}, this run's resource is a {run.Plan.Resource.Type}";
                await DecideAsync(new ChildStartFailed(start.Step, start.ChildRunId, why));
                return;
            }

            (_, result) = await services.Launcher.StartAsync(new RunRequest(ns, pipeline, run.Plan.Resource, RunTriggers.Parent(run.RunId))
            {
                Priority = run.Plan.Priority,
                Params = start.Params,
                RunId = start.ChildRunId,
                Parent = (run.RunId, start.Step, run.Plan.Depth),
            });
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The keepalive asks again (and starts it if it still does not exist).
            LogChildStartFailed(logger, ex, run.RunId, start.Step, start.ChildRunId);
            return;
        }

        LogChildStarted(logger, run.RunId, start.Step, start.ChildRunId, start.Pipeline);
        if (result.Run.Status.IsTerminal())
        {
            await DecideAsync(EndedOf(start.Step, result.Run));
        }
    }

    /// <summary>The keepalive's question to a running child: started? ended?</summary>
    private async Task CheckChildAsync(StartChild child)
    {
        RunState? state;
        try
        {
            state = await grains.GetRunGrain(child.ChildRunId).GetAsync();
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LogChildStartFailed(logger, ex, Run.RunId, child.Step, child.ChildRunId);
            return;
        }

        if (state is null)
        {
            await StartChildAsync(child);
        }
        else if (state.Status.IsTerminal())
        {
            await DecideAsync(EndedOf(child.Step, state));
        }
    }

    private async Task CancelChildAsync(CancelChild cancel)
    {
        try
        {
            await grains.GetRunGrain(cancel.ChildRunId).CancelAsync(cancel.Reason);
        }
        catch (Exception ex) when (ex is ConveyorConflictException or ConveyorNotFoundException)
        {
            // It ended already, or was never started: nothing to cancel.
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LogChildCancelFailed(logger, ex, Run.RunId, cancel.ChildRunId);
        }
    }

    private void NotifyParent(NotifyParent notify)
    {
        var ended = notify.Ended;
        // One-way: this run never waits on its parent.
        _ = grains.GetRunGrain(notify.ParentRunId).ChildEndedAsync(ended.Step, ended.ChildRunId, ended.Status, ended.Message, ended.Outputs);
    }

    /// <summary>What a parent's step learns from its child's state.</summary>
    private static ChildEnded EndedOf(string step, RunState child)
    {
        string? outputs = null;
        if (child.Status == RunStatus.Succeeded)
        {
            var pairs = child.Steps.Where(s => s.Output is not null).Select(s => $"{System.Text.Json.JsonSerializer.Serialize(s.Id)}:{s.Output}");
            outputs = "{" + string.Join(",", pairs) + "}";
        }

        return new ChildEnded(step, child.RunId, child.Status, child.Message, outputs);
    }
}
