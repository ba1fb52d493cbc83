using System.Collections.Concurrent;

namespace Conveyor.Api.Security;

/// <summary>
/// What this silo recently learned about key ids, so a flood of made-up keys costs no storage reads: ids found not to
/// exist (for a minute; a read and a key-grain activation per id and minute at most), and ids that authenticated
/// (so their holders still get in while their address is over its failure budget — see
/// <see cref="ClientAddressLimiter"/>). Ids only, never secrets; every request still checks its key's grain, so a
/// revocation applies at once. Bounded: a full set starts over. Key ids are random and made by the server, so an id a
/// caller tried is practically never one that is created within the minute.
/// </summary>
internal sealed class UnknownApiKeys(TimeProvider time)
{
    private static readonly TimeSpan Lifetime = TimeSpan.FromMinutes(1);
    private const int Capacity = 10_000;
    private readonly ConcurrentDictionary<string, long> _unknownUntil = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, byte> _valid = new(StringComparer.Ordinal);

    /// <summary>Whether <paramref name="id"/> was found not to exist within the last minute.</summary>
    public bool Contains(string id)
    {
        if (!_unknownUntil.TryGetValue(id, out var until))
        {
            return false;
        }

        if (time.GetTimestamp() < until)
        {
            return true;
        }

        _unknownUntil.TryRemove(id, out _);
        return false;
    }

    /// <summary>Remembers that <paramref name="id"/> does not exist.</summary>
    public void Add(string id)
    {
        if (_unknownUntil.Count >= Capacity)
        {
            _unknownUntil.Clear();
        }

        _unknownUntil[id] = time.GetTimestamp() + (long)(Lifetime.TotalSeconds * time.TimestampFrequency);
    }

    /// <summary>Whether <paramref name="id"/> authenticated on this silo before.</summary>
    public bool IsKnownValid(string id) => _valid.ContainsKey(id);

    /// <summary>Remembers that <paramref name="id"/> authenticated.</summary>
    public void MarkValid(string id)
    {
        if (_valid.Count >= Capacity)
        {
            _valid.Clear();
        }

        _valid.TryAdd(id, 0);
    }
}
