using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using Conveyor.Testing;

namespace Conveyor.ClusterTests;

/// <summary>
/// Starts many runs of a 5-step DAG (a → b, c → d → e, all on one driver) through the silos' HTTP APIs and checks
/// what each run's record says: finished, every step succeeded, and each (run, step) completed exactly once.
/// </summary>
public static class ClusterLoad
{
    public const string ResourceType = "app";
    public const string Pipeline = "dag5";
    public const string Driver = "worker";
    public static readonly string[] StepIds = ["a", "b", "c", "d", "e"];

    /// <summary>Creates the resource definition and the 5-step pipeline.</summary>
    public static async Task DefineAsync(SiloProcess silo)
    {
        await silo.PostJsonAsync("/resource-definitions", new { name = ResourceType, schema = new { type = "object" } });
        await silo.PostJsonAsync("/pipelines", new
        {
            name = Pipeline,
            resource = ResourceType,
            steps = new object[]
            {
                new { id = "a", driver = Driver },
                new { id = "b", driver = Driver, dependsOn = new[] { "a" } },
                new { id = "c", driver = Driver, dependsOn = new[] { "a" } },
                new { id = "d", driver = Driver, dependsOn = new[] { "b", "c" } },
                new { id = "e", driver = Driver, dependsOn = new[] { "d" } },
            },
        });
    }

    /// <summary>Starts <paramref name="count"/> runs, spreading the requests over <paramref name="silos"/>; returns the run ids.</summary>
    public static async Task<List<string>> StartRunsAsync(IReadOnlyList<SiloProcess> silos, string prefix, int count, string pipeline = Pipeline)
    {
        var ids = new ConcurrentBag<string>();
        await Parallel.ForAsync(0, count, new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (i, _) =>
        {
            var silo = silos[i % silos.Count];
            var created = await silo.PostJsonAsync("/resources", new { name = $"{prefix}-{i}", resource = ResourceType, pipeline, spec = new { n = i } });
            ids.Add(created.GetProperty("runid").GetString()!);
        });
        return [.. ids];
    }

    /// <summary>
    /// Polls until every run is terminal (asking any silo that answers; a silo whose peer just died may fail a read
    /// for a moment) and returns the final records.
    /// </summary>
    public static async Task<Dictionary<string, JsonElement>> WaitForAllAsync(Func<IReadOnlyList<SiloProcess>> silos, IEnumerable<string> runIds, TimeSpan timeout)
    {
        var done = new ConcurrentDictionary<string, JsonElement>();
        var pending = runIds.ToList();
        var clock = Stopwatch.StartNew();
        var round = 0;
        while (pending.Count > 0)
        {
            var current = silos();
            await Parallel.ForEachAsync(pending, new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (id, _) =>
            {
                var silo = current[(int)((uint)(id.GetHashCode() + round) % (uint)current.Count)];
                try
                {
                    var (status, run) = await silo.TryGetJsonAsync($"/runs/{id}");
                    if (status == 200 && run.GetProperty("status").GetString() is "Succeeded" or "Failed" or "Cancelled" or "TimedOut")
                    {
                        done[id] = run;
                    }
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or JsonException)
                {
                    // Try again next round (possibly on another silo).
                }
            });
            pending.RemoveAll(done.ContainsKey);
            round++;
            if (pending.Count == 0)
            {
                break;
            }

            if (clock.Elapsed > timeout)
            {
                var sample = "";
                try
                {
                    sample = (await current[0].TryGetJsonAsync($"/runs/{pending[0]}")).Body.ToString();
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or JsonException)
                {
                    sample = ex.Message;
                }

                throw new TimeoutException(
                    $"{pending.Count} runs did not finish within {timeout}: {string.Join(", ", pending.Take(5))}…\nfirst: {sample}\n" +
                    string.Join("\n", current.Select(s => $"--- {s.Name} ---\n{s.RecentOutput}")));
            }

            await Task.Delay(250);
        }

        return new Dictionary<string, JsonElement>(done);
    }

    /// <summary>Every run succeeded and each of its steps has exactly one successful attempt, its last, numbered consistently.</summary>
    public static void AssertExactlyOnce(IReadOnlyDictionary<string, JsonElement> runs)
    {
        foreach (var (id, run) in runs)
        {
            Assert.True(run.GetProperty("status").GetString() == "Succeeded", $"run {id} ended {run.GetProperty("status")}: {run.GetProperty("message")}");
            var steps = run.GetProperty("steps").EnumerateArray().ToList();
            Assert.Equal(StepIds, steps.Select(s => s.GetProperty("id").GetString()!));
            foreach (var step in steps)
            {
                var stepId = step.GetProperty("id").GetString();
                Assert.True(step.GetProperty("status").GetString() == "Succeeded", $"run {id} step {stepId} is {step.GetProperty("status")}");
                var attempts = step.GetProperty("attempts").EnumerateArray().ToList();
                Assert.True(attempts.Count(a => a.GetProperty("success").ValueKind == JsonValueKind.True) == 1, $"run {id} step {stepId}: {step}");
                Assert.True(attempts[^1].GetProperty("success").ValueKind == JsonValueKind.True, $"run {id} step {stepId}: the successful attempt is not the last: {step}");
                for (var i = 0; i < attempts.Count; i++)
                {
                    Assert.Equal(i + 1, attempts[i].GetProperty("number").GetInt32());
                    Assert.NotEqual(JsonValueKind.Null, attempts[i].GetProperty("finishedAt").ValueKind);
                }

                Assert.Equal(attempts.Count, step.GetProperty("attempt").GetInt32());
            }
        }
    }

    /// <summary>Latest <c>finishedAt</c> of the runs.</summary>
    public static DateTimeOffset LastFinish(IReadOnlyDictionary<string, JsonElement> runs) =>
        runs.Values.Max(r => r.GetProperty("finishedAt").GetDateTimeOffset());

    /// <summary>Earliest <c>createdAt</c> of the runs.</summary>
    public static DateTimeOffset FirstCreated(IReadOnlyDictionary<string, JsonElement> runs) =>
        runs.Values.Min(r => r.GetProperty("createdAt").GetDateTimeOffset());

    /// <summary>Polls until at least <paramref name="count"/> of the runs have finished.</summary>
    public static Task WaitForFinishedCountAsync(SiloProcess silo, IReadOnlyList<string> runIds, int count, TimeSpan timeout) =>
        Eventually.TrueAsync(
            async () =>
            {
                var finished = 0;
                await Parallel.ForEachAsync(runIds, new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (id, _) =>
                {
                    var (status, run) = await silo.TryGetJsonAsync($"/runs/{id}");
                    if (status == 200 && run.GetProperty("status").GetString() == "Succeeded")
                    {
                        Interlocked.Increment(ref finished);
                    }
                });
                return finished >= count;
            },
            timeout,
            $"{count} runs should finish");
}
