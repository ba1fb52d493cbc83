using System.CommandLine;
using Conveyor.Client;

namespace Conveyor.Cli;

/// <content>Run control of the pipeline language: approve/reject, pause/resume, and <c>runs watch</c> over run events.</content>
internal sealed partial class CliCommands
{
    partial void AddRunCommands(Command runs)
    {
        foreach (var approved in new[] { true, false })
        {
            var id = RunArgument();
            var latestOf = LatestOfOption();
            var step = new Argument<string>("step") { Description = "The approval step's id" };
            var comment = new Option<string?>("--comment", "-m") { Description = "Why (kept with the decision)" };
            var command = new Command(
                approved ? "approve" : "reject",
                approved ? "Approve a run's approval gate: the step succeeds and the run goes on" : "Reject a run's approval gate: the step fails")
            {
                id, latestOf, step, comment,
            };
            command.SetAction((parse, ct) => Execute(parse, async client =>
            {
                var runId = await ResolveRunAsync(client, parse.GetValue(id)!, parse.GetValue(latestOf), ct).ConfigureAwait(false);
                var stepId = parse.GetValue(step)!;
                var run = approved
                    ? await client.ApproveStepAsync(runId, stepId, parse.GetValue(comment), ct).ConfigureAwait(false)
                    : await client.RejectStepAsync(runId, stepId, parse.GetValue(comment), ct).ConfigureAwait(false);
                var status = run.Steps.FirstOrDefault(s => s.Id == stepId)?.Status;
                await Out.WriteLineAsync($"run {run.Id} {run.Status}; step {stepId} {status}").ConfigureAwait(false);
                return ExitCodes.Ok;
            }));
            runs.Subcommands.Add(command);
        }

        foreach (var pause in new[] { true, false })
        {
            var id = RunArgument();
            var latestOf = LatestOfOption();
            var command = new Command(
                pause ? "pause" : "resume",
                pause ? "Pause a running run: nothing new is dispatched, in-flight steps finish" : "Resume a paused run")
            {
                id, latestOf,
            };
            command.SetAction((parse, ct) => Execute(parse, async client =>
            {
                var runId = await ResolveRunAsync(client, parse.GetValue(id)!, parse.GetValue(latestOf), ct).ConfigureAwait(false);
                var run = pause
                    ? await client.PauseRunAsync(runId, ct).ConfigureAwait(false)
                    : await client.ResumeRunAsync(runId, ct).ConfigureAwait(false);
                await Out.WriteLineAsync($"run {run.Id} {run.Status}").ConfigureAwait(false);
                return ExitCodes.Ok;
            }));
            runs.Subcommands.Add(command);
        }
    }

    /// <summary>
    /// Draws the run, then again on each of its events (<c>GET /runs/{id}/events</c>: no polling), until it ends.
    /// On a terminal the frame is redrawn in place, and every <paramref name="interval"/> for its clock.
    /// </summary>
    private async Task<int> WatchAsync(ConveyorClient client, Guid runId, TimeSpan interval, CancellationToken ct)
    {
        var lastKey = "";
        var drawnLines = 0;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var events = client.FollowRunEventsAsync(runId, cancellationToken: stop.Token).GetAsyncEnumerator(stop.Token);
        Task<bool>? next = null;
        var feedEnded = false;
        try
        {
            while (true)
            {
                var run = await client.GetRunAsync(runId, ct).ConfigureAwait(false);
                if (_cli.Interactive)
                {
                    var frame = RunView.Render(run, DateTimeOffset.UtcNow, withClock: true);
                    if (drawnLines > 0)
                    {
                        // Back to the top of the previous frame, then overwrite it line by line.
                        await Out.WriteAsync($"\u001b[{drawnLines}A").ConfigureAwait(false);
                    }

                    await Out.WriteAsync(frame.Replace(Environment.NewLine, "\u001b[K" + Environment.NewLine, StringComparison.Ordinal)).ConfigureAwait(false);
                    drawnLines = frame.Split(Environment.NewLine).Length - 1;
                }
                else
                {
                    // Not a terminal: print a frame only when a state changed, without the ticking clock.
                    var frame = RunView.Render(run, DateTimeOffset.UtcNow, withClock: false);
                    if (frame != lastKey)
                    {
                        await Out.WriteAsync(frame).ConfigureAwait(false);
                        await Out.WriteLineAsync().ConfigureAwait(false);
                        lastKey = frame;
                    }
                }

                await Out.FlushAsync(ct).ConfigureAwait(false);
                if (run.IsFinished)
                {
                    await Out.WriteLineAsync($"run {run.Id} {run.Status}").ConfigureAwait(false);
                    return run.Status == Conveyor.Contracts.RunStatus.Succeeded ? ExitCodes.Ok : ExitCodes.RunFailed;
                }

                if (feedEnded)
                {
                    // The feed ended before the run showed it had: look again shortly.
                    await Task.Delay(interval, ct).ConfigureAwait(false);
                    continue;
                }

                // The next transition (or, on a terminal, the clock's next tick); the feed ending means the run ended.
                next ??= events.MoveNextAsync().AsTask();
                if (_cli.Interactive)
                {
                    await Task.WhenAny(next, Task.Delay(interval, ct)).ConfigureAwait(false);
                    ct.ThrowIfCancellationRequested();
                }

                if (next.IsCompleted || !_cli.Interactive)
                {
                    feedEnded = !await next.ConfigureAwait(false);
                    next = null;
                }
            }
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            try
            {
                if (next is not null)
                {
                    await next.ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException)
            {
                // Stopped while waiting for the next event.
            }

            await events.DisposeAsync().ConfigureAwait(false);
        }
    }
}
