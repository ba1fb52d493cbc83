using System.CommandLine;
using System.Globalization;
using Conveyor.Client;

namespace Conveyor.Cli;

/// <content><c>conveyor logs &lt;run&gt; [-f]</c>.</content>
internal sealed partial class CliCommands
{
    private Command LogsCommand()
    {
        var runId = RunArgument();
        var pipeline = LatestOfOption();
        var follow = new Option<bool>("--follow", "-f")
        {
            Description = "Keep printing new lines until the run ends; a broken stream is resumed where it stopped, and exit code 4 says it could not be",
        };
        var step = new Option<string?>("--step") { Description = "Only this step's lines" };
        var driver = new Option<string?>("--driver") { Description = "Only this driver's lines" };
        var after = new Option<ulong?>("--after") { Description = "Only lines after this sequence number (where an interrupted follow stopped)" };
        var logs = new Command("logs", "Print a run's log") { runId, pipeline, follow, step, driver, after };
        logs.SetAction((parse, ct) => Execute(parse, async client =>
        {
            var id = (await ResolveRunAsync(client, parse.GetValue(runId)!, parse.GetValue(pipeline), ct).ConfigureAwait(false)).ToString("D");
            var stepFilter = parse.GetValue(step);
            var driverFilter = parse.GetValue(driver);
            if (parse.GetValue(follow))
            {
                ulong? last = parse.GetValue(after);
                try
                {
                    await foreach (var line in client.FollowRunLogsAsync(id, last, ct).ConfigureAwait(false))
                    {
                        last = line.Seq;
                        if ((stepFilter is null || line.Labels?.GetValueOrDefault("step") == stepFilter) && (driverFilter is null || line.Driver == driverFilter))
                        {
                            await Out.WriteLineAsync(Format(line)).ConfigureAwait(false);
                            await Out.FlushAsync(ct).ConfigureAwait(false);
                        }
                    }
                }
                catch (ConveyorStreamInterruptedException ex)
                {
                    var resume = $"conveyor logs -f {id}" + (last is { } seq ? " --after " + seq.ToString(CultureInfo.InvariantCulture) : "");
                    throw new CliException(ExitCodes.Unreachable, $"{ex.Message.TrimEnd('.')}: {ex.InnerException?.Message}. Read on with: {resume}");
                }

                return ExitCodes.Ok;
            }

            var cursor = parse.GetValue(after)?.ToString(CultureInfo.InvariantCulture);
            do
            {
                var page = await client.GetRunLogsAsync(id, driverFilter, stepFilter, cursor, 1000, ct).ConfigureAwait(false);
                foreach (var line in page.Items)
                {
                    await Out.WriteLineAsync(Format(line)).ConfigureAwait(false);
                }

                cursor = page.Items.Count == 0 ? null : page.NextCursor;
            }
            while (cursor is not null);
            return ExitCodes.Ok;
        }));
        return logs;
    }

    private static string Format(LogLine line)
    {
        var step = line.Labels?.GetValueOrDefault("step");
        return $"{line.Timestamp} [{line.Driver}{(string.IsNullOrEmpty(step) ? "" : "/" + step)}] {line.Message}";
    }
}
