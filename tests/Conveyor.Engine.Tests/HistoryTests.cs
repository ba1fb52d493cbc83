using System.Globalization;
using System.Text.Json;
using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Runs.Engine;

namespace Conveyor.Engine.Tests;

/// <summary>
/// Input histories in <c>Histories/*.json</c>, replayed against the machine: each entry is an input at a time (ms after
/// the epoch) and the decision it must produce, and the file ends with where the run and its steps must be. A history
/// pins a whole scenario — the order of effects included — so a change of behaviour shows as the entry it breaks.
/// </summary>
/// <remarks>
/// Entry inputs: <c>start</c>, <c>prepare</c>, <c>tick</c>, <c>keepalive</c>, <c>reconnected</c>, <c>granted</c>,
/// <c>superseded</c>, <c>cancel</c> (<c>reason</c>), <c>retry</c>, <c>reload</c> (a new machine over the state, as after a
/// reactivation; no decision), <c>result</c> (<c>step</c>, optional <c>attempt</c>, <c>success</c>, <c>data</c>,
/// <c>message</c>, <c>original</c>: no step id, as an original driver sends it), <c>driver-appears</c> (<c>driver</c>).
/// </remarks>
public sealed class HistoryTests
{
    public static TheoryData<string> Histories()
    {
        var data = new TheoryData<string>();
        foreach (var file in Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "Histories"), "*.json").Order(StringComparer.Ordinal))
        {
            data.Add(Path.GetFileName(file));
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Histories))]
    public void A_recorded_history_replays_to_the_same_decisions(string file)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Histories", file)));
        var root = doc.RootElement;
        var pipeline = RunHarness.Pipeline(
            root.GetProperty("pipeline").GetString()!,
            root.TryGetProperty("failurePolicy", out var policy) ? Enum.Parse<FailurePolicy>(policy.GetString()!) : FailurePolicy.FailFast,
            root.TryGetProperty("timeoutMs", out var timeout) ? TimeSpan.FromMilliseconds(timeout.GetInt64()) : null,
            root.TryGetProperty("concurrency", out var concurrency) ? concurrency.GetInt32() : null);
        var emit = root.TryGetProperty("events", out var events) && events.GetBoolean();
        var h = new RunHarness(pipeline, new RunMachineOptions { EmitEvents = emit, EmitRunEvents = emit });
        if (root.TryGetProperty("missingDrivers", out var missing))
        {
            foreach (var driver in missing.EnumerateArray())
            {
                h.MissingDrivers.Add(driver.GetString()!);
            }
        }

        var index = 0;
        foreach (var entry in root.GetProperty("history").EnumerateArray())
        {
            index++;
            var at = entry.GetProperty("at").GetInt64();
            var input = entry.GetProperty("input").GetString()!;
            List<string>? effects = input switch
            {
                "start" => h.Start(at),
                "prepare" => h.Do(PrepareRun.Instance, at),
                "tick" => h.Tick(at),
                "keepalive" => h.Do(KeepAliveTick.Instance, at),
                "reconnected" => h.Do(Reconnected.Instance, at),
                "granted" => h.Do(SlotGranted.Instance, at),
                "superseded" => h.Do(new Superseded(Guid.Empty), at),
                "cancel" => h.Do(new CancelRun(entry.GetProperty("reason").GetString()!), at),
                "retry" => h.Do(new RetryRun(null), at),
                "result" => h.Result(
                    entry.GetProperty("step").GetString()!,
                    at,
                    success: !entry.TryGetProperty("success", out var success) || success.GetBoolean(),
                    data: entry.TryGetProperty("data", out var data) ? data.GetRawText() : null,
                    attempt: entry.TryGetProperty("attempt", out var attempt) ? attempt.GetInt32() : null,
                    original: entry.TryGetProperty("original", out var original) && original.GetBoolean(),
                    message: entry.TryGetProperty("message", out var message) ? message.GetString() : null),
                "reload" => Reload(h),
                "driver-appears" => DriverAppears(h, entry.GetProperty("driver").GetString()!),
                _ => throw new InvalidOperationException($"{file} entry {index}: unknown input {input}"),
            };

            var where = $"{file} entry {index} ({input} at {at.ToString(CultureInfo.InvariantCulture)})";
            if (entry.TryGetProperty("effects", out var expected))
            {
                var want = expected.EnumerateArray().Select(e => e.GetString()!).ToList();
                Assert.True(want.SequenceEqual(effects!), $"{where}: expected [{string.Join(", ", want)}], got [{string.Join(", ", effects!)}]");
            }

            if (entry.TryGetProperty("outcome", out var outcome))
            {
                Assert.True(Enum.Parse<ApplyOutcome>(outcome.GetString()!) == h.Outcome, $"{where}: outcome {h.Outcome}");
            }

            if (entry.TryGetProperty("refused", out var refused))
            {
                Assert.True(refused.GetBoolean() == h.Last!.Refusal is not null, $"{where}: refusal {h.Last!.Refusal}");
            }
        }

        var final = root.GetProperty("final");
        Assert.Equal(Enum.Parse<RunStatus>(final.GetProperty("run").GetString()!), h.Run.Status);
        Assert.Equal(final.GetProperty("steps").GetString(), h.Statuses());
        if (final.TryGetProperty("message", out var runMessage))
        {
            Assert.Equal(runMessage.GetString(), h.Run.Message);
        }

        if (final.TryGetProperty("attempts", out var attempts))
        {
            Assert.Equal(attempts.GetString(), string.Join(" ", h.Run.Steps.Select(s => $"{s.Id}={s.Attempts.Count}")));
        }

        if (final.TryGetProperty("events", out var eventIds))
        {
            Assert.Equal(eventIds.EnumerateArray().Select(e => e.GetString()!.Replace("{run}", RunHarness.RunId.ToString(), StringComparison.Ordinal)), h.PublishedEvents);
        }
    }

    private static List<string>? Reload(RunHarness h)
    {
        h.Reload();
        return null;
    }

    private static List<string>? DriverAppears(RunHarness h, string driver)
    {
        h.MissingDrivers.Remove(driver);
        return null;
    }
}
