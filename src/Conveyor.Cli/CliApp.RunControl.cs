using System.CommandLine;
using Conveyor.Client;
using Conveyor.Contracts;

namespace Conveyor.Cli;

/// <content>Run control of the pipeline language: approve/reject, pause/resume, and <c>runs watch</c> over run events.</content>
internal static partial class CliApp
{
    private sealed partial class Commands
    {
        private void AddRunControlCommands(Command runs)
        {
            foreach (var approved in new[] { true, false })
            {
                var id = RunIdArgument();
                var step = new Argument<string>("step") { Description = "The approval step's id" };
                var comment = new Option<string?>("--comment", "-m") { Description = "Why (kept with the decision)" };
                var command = new Command(
                    approved ? "approve" : "reject",
                    approved ? "Approve a run's approval gate: the step succeeds and the run goes on" : "Reject a run's approval gate: the step fails")
                {
                    id, step, comment,
                };
                command.SetAction((parse, ct) => Execute(parse, async client =>
                {
                    var runId = ParseRunId(parse.GetValue(id)!);
                    var stepId = parse.GetValue(step)!;
                    var run = approved
                        ? await client.ApproveStepAsync(runId, stepId, parse.GetValue(comment), ct).ConfigureAwait(false)
                        : await client.RejectStepAsync(runId, stepId, parse.GetValue(comment), ct).ConfigureAwait(false);
                    var status = run.Steps.FirstOrDefault(s => s.Id == stepId)?.Status;
                    await _out.WriteLineAsync($"run {run.Id} {run.Status}; step {stepId} {status}").ConfigureAwait(false);
                    return ExitCodes.Ok;
                }));
                runs.Subcommands.Add(command);
            }

            foreach (var pause in new[] { true, false })
            {
                var id = RunIdArgument();
                var command = new Command(
                    pause ? "pause" : "resume",
                    pause ? "Pause a running run: nothing new is dispatched, in-flight steps finish" : "Resume a paused run")
                {
                    id,
                };
                command.SetAction((parse, ct) => Execute(parse, async client =>
                {
                    var runId = ParseRunId(parse.GetValue(id)!);
                    var run = pause
                        ? await client.PauseRunAsync(runId, ct).ConfigureAwait(false)
                        : await client.ResumeRunAsync(runId, ct).ConfigureAwait(false);
                    await _out.WriteLineAsync($"run {run.Id} {run.Status}").ConfigureAwait(false);
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
                    if (_interactive)
                    {
                        var frame = RunView.Render(run, DateTimeOffset.UtcNow, withClock: true);
                        if (drawnLines > 0)
                        {
                            // Back to the top of the previous frame, then overwrite it line by line.
                            await _out.WriteAsync($"\u001b[{drawnLines}A").ConfigureAwait(false);
                        }

                        await _out.WriteAsync(frame.Replace(Environment.NewLine, "\u001b[K" + Environment.NewLine, StringComparison.Ordinal)).ConfigureAwait(false);
                        drawnLines = frame.Split(Environment.NewLine).Length - 1;
                    }
                    else
                    {
                        // Not a terminal: print a frame only when a state changed, without the ticking clock.
                        var frame = RunView.Render(run, DateTimeOffset.UtcNow, withClock: false);
                        if (frame != lastKey)
                        {
                            await _out.WriteAsync(frame).ConfigureAwait(false);
                            await _out.WriteLineAsync().ConfigureAwait(false);
                            lastKey = frame;
                        }
                    }

                    await _out.FlushAsync(ct).ConfigureAwait(false);
                    if (run.IsFinished)
                    {
                        await _out.WriteLineAsync($"run {run.Id} {run.Status}").ConfigureAwait(false);
                        return run.Status == RunStatus.Succeeded ? ExitCodes.Ok : ExitCodes.RunFailed;
                    }

                    if (feedEnded)
                    {
                        // The feed ended before the run showed it had: look again shortly.
                        await Task.Delay(interval, ct).ConfigureAwait(false);
                        continue;
                    }

                    // The next transition (or, on a terminal, the clock's next tick); the feed ending means the run ended.
                    next ??= events.MoveNextAsync().AsTask();
                    if (_interactive)
                    {
                        await Task.WhenAny(next, Task.Delay(interval, ct)).ConfigureAwait(false);
                        ct.ThrowIfCancellationRequested();
                    }

                    if (next.IsCompleted || !_interactive)
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
}
