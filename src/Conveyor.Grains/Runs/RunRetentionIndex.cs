using System.Globalization;
using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Resilience;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using StackExchange.Redis;

namespace Conveyor.Grains.Runs;

/// <summary>A finished run due for deletion, as the retention index names it.</summary>
/// <param name="Namespace">The run's namespace.</param>
/// <param name="Pipeline">The run's pipeline.</param>
/// <param name="RunId">The run.</param>
internal readonly record struct ExpiredRun(string Namespace, string Pipeline, Guid RunId)
{
    /// <summary>The index member: <c>{namespace}/{pipeline}/{run}</c> (names never contain '/').</summary>
    public string Member => $"{Namespace}/{Pipeline}/{RunId}";

    public static bool TryParse(string member, out ExpiredRun run)
    {
        var parts = member.Split('/');
        if (parts.Length == 3 && Guid.TryParse(parts[2], out var id))
        {
            run = new ExpiredRun(parts[0], parts[1], id);
            return true;
        }

        run = default;
        return false;
    }
}

/// <summary>
/// Which finished runs are due for deletion, ordered by when (one sorted set for the whole service), so finding the
/// next batch costs O(log n + batch) however many runs are kept; and, per pipeline with a <c>keepLast</c>, its finished
/// runs by end time, so the cap pushes the oldest into the due set as newer ones finish. The run grain files itself when
/// it ends (with its index entry) and takes itself out when it starts again or is deleted.
/// </summary>
internal interface IRunRetentionIndex
{
    /// <summary>Whether retention works here (it needs Redis).</summary>
    bool IsAvailable { get; }

    /// <summary>Files a finished run: due at its expiry, and counted against its pipeline's <c>keepLast</c>.</summary>
    Task FileAsync(RunSummary run, DateTimeOffset now);

    /// <summary>Takes a run out (it started again, or it is deleted).</summary>
    Task ForgetAsync(string ns, string pipeline, Guid runId);

    /// <summary>Up to <paramref name="max"/> runs due at <paramref name="now"/>, the longest due first.</summary>
    Task<IReadOnlyList<ExpiredRun>> DueAsync(DateTimeOffset now, int max);

    /// <summary>Moves a run whose deletion failed back, to be tried again at <paramref name="at"/>.</summary>
    Task PostponeAsync(ExpiredRun run, DateTimeOffset at);

    /// <summary>Makes every finished run of a pipeline due now (the pipeline was deleted); returns how many.</summary>
    Task<long> ExpireFinishedAsync(string ns, string pipeline, DateTimeOffset now);
}

/// <summary>No retention (no Redis): runs are kept.</summary>
internal sealed class NoRunRetentionIndex : IRunRetentionIndex
{
    public bool IsAvailable => false;

    public Task FileAsync(RunSummary run, DateTimeOffset now) => Task.CompletedTask;

    public Task ForgetAsync(string ns, string pipeline, Guid runId) => Task.CompletedTask;

    public Task<IReadOnlyList<ExpiredRun>> DueAsync(DateTimeOffset now, int max) => Task.FromResult<IReadOnlyList<ExpiredRun>>([]);

    public Task PostponeAsync(ExpiredRun run, DateTimeOffset at) => Task.CompletedTask;

    public Task<long> ExpireFinishedAsync(string ns, string pipeline, DateTimeOffset now) => Task.FromResult(0L);
}

/// <summary><see cref="IRunRetentionIndex"/> on Redis sorted sets; every command is idempotent, so faults are retried.</summary>
internal sealed class RedisRunRetentionIndex(ConveyorRedis redis, IOptions<ClusterOptions> cluster, TransientFaults faults) : IRunRetentionIndex
{
    // KEYS: due set, the pipeline's finished set. ARGV: member, expiry ms ('' = never), run id, end ms, keepLast (0 =
    // none), now ms, member prefix of the pipeline. The cap pushes the oldest finished runs into the due set, now.
    private const string FileScript = """
        if ARGV[2] ~= '' then redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1]) end
        local keep = tonumber(ARGV[5])
        if keep > 0 then
          redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
          local n = redis.call('ZCARD', KEYS[2])
          if n > keep then
            local old = redis.call('ZRANGE', KEYS[2], 0, n - keep - 1)
            for _, id in ipairs(old) do
              redis.call('ZADD', KEYS[1], ARGV[6], ARGV[7] .. id)
            end
            redis.call('ZREMRANGEBYRANK', KEYS[2], 0, n - keep - 1)
          end
        end
        return 1
        """;

    private static readonly RunStatus[] Terminal = [RunStatus.Succeeded, RunStatus.Failed, RunStatus.Cancelled, RunStatus.TimedOut];
    private readonly string _prefix = $"conveyor:{cluster.Value.ServiceId}:";
    private readonly ConveyorRedis _redis = redis;

    public bool IsAvailable => true;

    private RedisKey DueKey => _prefix + "runs:expiry";

    public Task FileAsync(RunSummary run, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(run);
        var expired = new ExpiredRun(run.Namespace, run.Pipeline, run.RunId);
        RedisKey[] keys = [DueKey, FinishedKey(run.Namespace, run.Pipeline)];
        RedisValue[] args =
        [
            expired.Member,
            run.ExpiresAt is { } at ? Ms(at) : "",
            run.RunId.ToString(),
            Ms(run.FinishedAt ?? now),
            run.KeepLast ?? 0,
            Ms(now),
            $"{run.Namespace}/{run.Pipeline}/",
        ];
        return faults.Redis.ExecuteAsync(
            static async (s, _) => await (await s.redis.GetDatabaseAsync().ConfigureAwait(false)).ScriptEvaluateAsync(FileScript, s.keys, s.args).ConfigureAwait(false),
            (redis: _redis, keys, args)).AsTask();
    }

    public Task ForgetAsync(string ns, string pipeline, Guid runId) =>
        faults.Redis.ExecuteAsync(
            static async (s, ct) =>
            {
                var db = await s.Self._redis.GetDatabaseAsync().ConfigureAwait(false);
                var tx = db.CreateTransaction();
                _ = tx.SortedSetRemoveAsync(s.Self.DueKey, new ExpiredRun(s.ns, s.pipeline, s.runId).Member);
                _ = tx.SortedSetRemoveAsync(s.Self.FinishedKey(s.ns, s.pipeline), s.runId.ToString());
                await tx.ExecuteAsync().ConfigureAwait(false);
            },
            (Self: this, ns, pipeline, runId)).AsTask();

    public async Task<IReadOnlyList<ExpiredRun>> DueAsync(DateTimeOffset now, int max)
    {
        var members = await faults.Redis.ExecuteAsync(
            static async (s, _) => await (await s.Self._redis.GetDatabaseAsync().ConfigureAwait(false))
                .SortedSetRangeByScoreAsync(s.Self.DueKey, double.NegativeInfinity, s.now, take: s.max).ConfigureAwait(false),
            (Self: this, now: (double)now.ToUnixTimeMilliseconds(), max)).ConfigureAwait(false);
        var runs = new List<ExpiredRun>(members.Length);
        foreach (var member in members)
        {
            if (ExpiredRun.TryParse(member.ToString(), out var run))
            {
                runs.Add(run);
            }
        }

        return runs;
    }

    public Task PostponeAsync(ExpiredRun run, DateTimeOffset at) =>
        faults.Redis.ExecuteAsync(
            static async (s, _) => await (await s.Self._redis.GetDatabaseAsync().ConfigureAwait(false))
                .SortedSetAddAsync(s.Self.DueKey, s.run.Member, s.at, SortedSetWhen.Exists).ConfigureAwait(false),
            (Self: this, run, at: (double)at.ToUnixTimeMilliseconds())).AsTask();

    public async Task<long> ExpireFinishedAsync(string ns, string pipeline, DateTimeOffset now)
    {
        var db = await _redis.GetDatabaseAsync().ConfigureAwait(false);
        var score = (double)now.ToUnixTimeMilliseconds();
        long count = 0;
        foreach (var status in Terminal)
        {
            var key = _prefix + ns + ":runs:p:" + pipeline + ":s:" + status.ToString().ToLowerInvariant();
            for (long start = 0; ; start += 1000)
            {
                var ids = await db.SortedSetRangeByRankAsync(key, start, start + 999).ConfigureAwait(false);
                if (ids.Length == 0)
                {
                    break;
                }

                var entries = Array.ConvertAll(ids, id => new SortedSetEntry($"{ns}/{pipeline}/{id}", score));
                await db.SortedSetAddAsync(DueKey, entries).ConfigureAwait(false);
                count += ids.Length;
            }
        }

        return count;
    }

    private RedisKey FinishedKey(string ns, string pipeline) => _prefix + ns + ":runs:p:" + pipeline + ":finished";

    private static string Ms(DateTimeOffset at) => at.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture);
}
