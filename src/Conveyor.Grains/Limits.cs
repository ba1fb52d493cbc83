using System.Globalization;
using System.Text;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Triggers;

namespace Conveyor.Grains;

/// <summary>Checks what a client asks the engine to keep against <see cref="ConveyorLimitsOptions"/>; each refusal names its setting.</summary>
internal static class Limits
{
    private const string Prefix = ConveyorLimitsOptions.Section + ":";

    /// <summary>Steps and schedules of a pipeline: how many, and how often a schedule fires.</summary>
    public static void CheckPipeline(PipelineSpec pipeline, ConveyorLimitsOptions limits)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        ArgumentNullException.ThrowIfNull(limits);
        if (pipeline.Steps.Count > limits.MaxStepsPerPipeline)
        {
            throw new ConveyorLimitExceededException(
                "steps", Prefix + nameof(limits.MaxStepsPerPipeline), Text(limits.MaxStepsPerPipeline),
                $"the pipeline has {pipeline.Steps.Count} steps; at most {limits.MaxStepsPerPipeline} are allowed ({Prefix}{nameof(limits.MaxStepsPerPipeline)})");
        }

        if (pipeline.Schedules.Count > limits.MaxSchedulesPerPipeline)
        {
            throw new ConveyorLimitExceededException(
                "schedules", Prefix + nameof(limits.MaxSchedulesPerPipeline), Text(limits.MaxSchedulesPerPipeline),
                $"the pipeline has {pipeline.Schedules.Count} schedules; at most {limits.MaxSchedulesPerPipeline} are allowed ({Prefix}{nameof(limits.MaxSchedulesPerPipeline)})");
        }

        for (var i = 0; i < pipeline.Schedules.Count; i++)
        {
            if (Schedules.TryParse(pipeline.Schedules[i].Cron, out var cron, out _)
                && ShortestInterval(cron!) is { } interval && interval < limits.MinScheduleInterval)
            {
                throw new ConveyorLimitExceededException(
                    $"schedules[{i}].cron", Prefix + nameof(limits.MinScheduleInterval), limits.MinScheduleInterval.ToString("c", CultureInfo.InvariantCulture),
                    $"schedule '{Names.Truncate(pipeline.Schedules[i].Cron)}' fires {interval.TotalSeconds:0.###} s apart; occurrences must be at least {limits.MinScheduleInterval.TotalSeconds:0.###} s apart ({Prefix}{nameof(limits.MinScheduleInterval)})");
            }
        }
    }

    /// <summary>A resource's spec size (413 beyond the limit).</summary>
    public static void CheckSpec(string? spec, ConveyorLimitsOptions limits)
    {
        ArgumentNullException.ThrowIfNull(limits);
        if (spec is { } text && text.Length > limits.MaxResourceSpecBytes / 3 && Encoding.UTF8.GetByteCount(text) is var size && size > limits.MaxResourceSpecBytes)
        {
            throw new ConveyorLimitExceededException(
                "spec", Prefix + nameof(limits.MaxResourceSpecBytes), Text(limits.MaxResourceSpecBytes),
                $"the resource spec is {size} bytes; at most {limits.MaxResourceSpecBytes} are allowed ({Prefix}{nameof(limits.MaxResourceSpecBytes)})",
                tooLarge: true);
        }
    }

    /// <summary>
    /// The shortest time between two of the expression's first 200 occurrences within about a year (UTC): enough to
    /// see the tightest spacing of any expression, whose pattern repeats at most yearly.
    /// </summary>
    public static TimeSpan? ShortestInterval(Cronos.CronExpression cron)
    {
        ArgumentNullException.ThrowIfNull(cron);
        var from = new DateTime(2001, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        DateTime? previous = null;
        TimeSpan? shortest = null;
        foreach (var at in cron.GetOccurrences(from, from.AddDays(400), TimeZoneInfo.Utc).Take(200))
        {
            if (previous is { } p && (shortest is null || at - p < shortest))
            {
                shortest = at - p;
            }

            previous = at;
        }

        return shortest;
    }

    private static string Text(int value) => value.ToString(CultureInfo.InvariantCulture);
}
