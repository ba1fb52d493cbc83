namespace Conveyor.Bench;

/// <summary>
/// An HDR-style latency histogram: log-linear buckets (every power of two split into 128 linear sub-buckets, so any
/// recorded value is known to within 1/128 ≈ 0.8 %) over 1 µs … ~1 h, fixed memory, O(1) record. Percentiles report
/// the upper edge of the bucket, never under-stating a latency. Not thread-safe: record from one thread or lock.
/// </summary>
public sealed class LatencyHistogram
{
    private const int SubBuckets = 128;
    private const int Exact = 2 * SubBuckets;
    private const int MaxShift = 40;
    private readonly long[] _counts = new long[Exact + (MaxShift * SubBuckets)];
    private long _max;

    public long Count { get; private set; }

    /// <summary>Records a latency in milliseconds (negative values, from clock noise, count as 0).</summary>
    public void RecordMs(double milliseconds)
    {
        var micros = (long)Math.Max(0, Math.Round(milliseconds * 1000));
        _counts[Index(micros)]++;
        _max = Math.Max(_max, micros);
        Count++;
    }

    /// <summary>The value at quantile <paramref name="q"/> (0…1) in milliseconds, NaN when empty.</summary>
    public double PercentileMs(double q)
    {
        if (Count == 0)
        {
            return double.NaN;
        }

        var rank = (long)Math.Ceiling(q * Count);
        rank = Math.Clamp(rank, 1, Count);
        long seen = 0;
        for (var i = 0; i < _counts.Length; i++)
        {
            seen += _counts[i];
            if (seen >= rank)
            {
                return Math.Min(UpperEdge(i), _max) / 1000.0;
            }
        }

        return _max / 1000.0;
    }

    public double MaxMs => Count == 0 ? double.NaN : _max / 1000.0;

    // Values below 256 µs are exact; above, a value with its top bit at b falls in one of 128 buckets of width
    // 2^(b-7) — the value's top 8 bits pick the bucket.
    private static int Index(long micros)
    {
        if (micros < Exact)
        {
            return (int)micros;
        }

        var shift = Math.Min(63 - (int)long.LeadingZeroCount(micros) - 7, MaxShift);
        var sub = (int)Math.Min((micros >> shift) - SubBuckets, SubBuckets - 1);
        return Exact + ((shift - 1) * SubBuckets) + sub;
    }

    private static long UpperEdge(int index)
    {
        if (index < Exact)
        {
            return index;
        }

        var k = index - Exact;
        var shift = (k / SubBuckets) + 1;
        var lower = (long)(SubBuckets + (k % SubBuckets)) << shift;
        return lower + (1L << shift) - 1;
    }
}
