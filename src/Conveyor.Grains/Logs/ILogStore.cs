using Conveyor.Contracts;

namespace Conveyor.Grains.Logs;

/// <summary>
/// Where run log entries are kept and read from. Entries are ordered by a store-wide, strictly increasing
/// sequence number that doubles as the paging cursor and the SSE event id. The default implementation is
/// <see cref="JetStreamLogStore"/> (the <c>conveyor-logs</c> stream); register another <see cref="ILogStore"/> before
/// <c>AddConveyorGrains</c> to replace it.
/// </summary>
internal interface ILogStore
{
    /// <summary>Reads one page of a run's entries after <see cref="LogQuery.After"/>, in sequence order.</summary>
    Task<LogPage> ReadAsync(string runId, LogQuery query, CancellationToken cancellationToken = default);

    /// <summary>
    /// Every entry of a run with a sequence greater than <paramref name="after"/>: first the stored ones, then new ones as
    /// they are stored, with no gap and no duplicate between the two. Ends only when cancelled.
    /// </summary>
    IAsyncEnumerable<StoredLogEntry> FollowAsync(string runId, ulong after = 0, CancellationToken cancellationToken = default);

    /// <summary>Deletes every entry of a run (the run is being deleted); a store that cannot delete keeps them.</summary>
    Task PurgeAsync(string runId, CancellationToken cancellationToken = default) => Task.CompletedTask;
}

/// <summary>A stored log entry and its sequence number.</summary>
/// <param name="Sequence">Position in the store; strictly increasing.</param>
/// <param name="Entry">The normalized entry.</param>
internal sealed record StoredLogEntry(ulong Sequence, LogEntry Entry)
{
    /// <summary>Whether the entry passes the driver and step filters (null or empty: no filter).</summary>
    public bool Matches(string? driver, string? step) =>
        (string.IsNullOrEmpty(driver) || string.Equals(Entry.Driver, driver, StringComparison.Ordinal))
        && (string.IsNullOrEmpty(step) || (Entry.Labels is { } labels && labels.TryGetValue("step", out var s) && string.Equals(s, step, StringComparison.Ordinal)));
}

/// <summary>What to read from a run's log.</summary>
internal sealed record LogQuery
{
    /// <summary>Only entries of this driver.</summary>
    public string? Driver { get; init; }

    /// <summary>Only entries whose <c>labels.step</c> is this.</summary>
    public string? Step { get; init; }

    /// <summary>Only entries with a greater sequence (the previous page's cursor); 0 reads from the start.</summary>
    public ulong After { get; init; }

    /// <summary>Page size.</summary>
    public int Limit { get; init; } = 100;
}

/// <summary>One page of a run's log.</summary>
/// <param name="Items">Entries in sequence order.</param>
/// <param name="NextCursor">Pass as <see cref="LogQuery.After"/> to read on; null when nothing more is stored now.</param>
internal sealed record LogPage(IReadOnlyList<StoredLogEntry> Items, ulong? NextCursor);
