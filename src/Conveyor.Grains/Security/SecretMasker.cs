using System.Collections.Concurrent;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Runs;

namespace Conveyor.Grains.Security;

/// <summary>
/// Masks, in a run's log entries as they are ingested, the values of the secrets its steps may fetch: a driver that
/// echoes a password (a shell command run with <c>set -x</c>, a stack trace) does not put it in the log store, where
/// every viewer of the namespace can read it.
/// </summary>
/// <remarks>
/// Best effort, as any masking: only the exact current values of the secrets the run's pipeline names (of at least
/// <see cref="MinLength"/> characters) are replaced, not encodings or fragments of them. Values are looked up once per
/// run and <see cref="Lifetime"/> and kept in this silo's memory meanwhile (they are in memory anyway while a step
/// fetches them).
/// </remarks>
internal sealed class SecretMasker(IGrainFactory grains, TimeProvider time)
{
    /// <summary>What a masked value is replaced with.</summary>
    public const string Mask = "***";

    /// <summary>Shorter values are left alone: masking "a" would shred every line.</summary>
    public const int MinLength = 4;

    private static readonly TimeSpan Lifetime = TimeSpan.FromSeconds(30);
    private const int Capacity = 10_000;
    private readonly ConcurrentDictionary<Guid, (string[] Values, long Until)> _runs = new();

    /// <summary>The secret values a line of run <paramref name="runId"/> must not show, longest first (empty for most runs).</summary>
    public async ValueTask<string[]> ValuesForAsync(string runId)
    {
        if (!Guid.TryParse(runId, out var id))
        {
            return [];
        }

        var now = time.GetTimestamp();
        if (_runs.TryGetValue(id, out var cached) && now < cached.Until)
        {
            return cached.Values;
        }

        var values = await LoadAsync(id).ConfigureAwait(false);
        if (_runs.Count >= Capacity)
        {
            _runs.Clear();
        }

        _runs[id] = (values, now + (long)(Lifetime.TotalSeconds * time.TimestampFrequency));
        return values;
    }

    /// <summary><paramref name="text"/> with each of <paramref name="values"/> replaced by <see cref="Mask"/>.</summary>
    public static string Apply(string text, string[] values)
    {
        ArgumentNullException.ThrowIfNull(values);
        foreach (var value in values)
        {
            if (text.Contains(value, StringComparison.Ordinal))
            {
                text = text.Replace(value, Mask, StringComparison.Ordinal);
            }
        }

        return text;
    }

    private async Task<string[]> LoadAsync(Guid runId)
    {
        var run = await grains.GetRunGrain(runId).GetAsync().ConfigureAwait(false);
        var names = run?.Plan.Pipeline.Steps.SelectMany(s => s.Secrets).Distinct(StringComparer.Ordinal).ToList() ?? [];
        if (run is null || names.Count == 0)
        {
            return [];
        }

        var secrets = grains.GetGrain<ISecretsGrain>(run.Plan.Namespace);
        var missing = await secrets.MissingAsync(names).ConfigureAwait(false);
        var values = await secrets.ResolveAsync(names.Except(missing).ToList()).ConfigureAwait(false);
        return values.Values.Where(v => v.Length >= MinLength).Distinct(StringComparer.Ordinal).OrderByDescending(v => v.Length).ToArray();
    }
}
