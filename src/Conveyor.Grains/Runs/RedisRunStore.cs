using System.Security.Cryptography;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Resilience;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Serialization;
using StackExchange.Redis;

namespace Conveyor.Grains.Runs;

/// <summary>
/// <see cref="IRunStore"/> on one Redis hash per run: the immutable plan, a small header and one field per step, so a
/// transition writes the header and the steps it changed — O(changed), not O(steps) — in one atomic, version-checked
/// script. Runs stored whole by the Orleans grain storage of earlier versions are read from there and moved here by
/// their next write.
/// </summary>
internal sealed class RedisRunStore(
    ConveyorRedis redis,
    Serializer serializer,
    IOptions<ClusterOptions> cluster,
    TransientFaults faults,
    GrainStorageRunStore? legacy = null) : IRunStore
{
    private const string VersionField = "v";
    private const string HeaderField = "h";
    private const string PlanField = "p";
    private const string StepPrefix = "s:";

    // Applies the write only if the stored version is the one the writer read; a retry of a write that already landed
    // finds its own new version and succeeds. HSET goes in chunks: Lua's unpack() is limited to a few thousand values.
    private const string WriteScript = """
        local v = redis.call('HGET', KEYS[1], 'v') or ''
        if v == ARGV[2] then return 1 end
        if v ~= ARGV[1] then return 0 end
        local n = #ARGV
        local i = 3
        while i <= n do
          local j = math.min(i + 999, n)
          redis.call('HSET', KEYS[1], unpack(ARGV, i, j))
          i = j + 1
        end
        redis.call('HSET', KEYS[1], 'v', ARGV[2])
        return 1
        """;

    private static readonly List<StepState> NoSteps = [];
    private static readonly RunPlan NoPlan = new();

    private readonly string _prefix = $"conveyor:{cluster.Value.ServiceId}:run:";

    /// <inheritdoc />
    public async Task<StoredRun?> ReadAsync(GrainId grain)
    {
        var key = Key(grain);
        // A run stored by an earlier version lives in the grain storage; it is looked for at the same time, so a new
        // run's activation (which finds neither) pays one round trip, not two.
        var legacyRead = legacy?.ReadAsync(grain);
        var fields = await faults.Redis.ExecuteAsync(
            static async (s, _) => await (await s.redis.GetDatabaseAsync().ConfigureAwait(false)).HashGetAllAsync(s.key).ConfigureAwait(false),
            (redis, key)).ConfigureAwait(false);
        if (fields.Length == 0)
        {
            // Nothing in this layout: its first write here stores the earlier version's record whole.
            var old = legacyRead is null ? null : await legacyRead.ConfigureAwait(false);
            return old is null ? null : new StoredRun(old.Run, null);
        }

        // Found here: whatever the other read finds (or fails with) does not matter.
        legacyRead?.ContinueWith(static t => t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);

        string? version = null;
        byte[]? header = null;
        byte[]? plan = null;
        var steps = new Dictionary<string, byte[]>(fields.Length, StringComparer.Ordinal);
        foreach (var field in fields)
        {
            var name = (string)field.Name!;
            switch (name)
            {
                case VersionField:
                    version = field.Value;
                    break;
                case HeaderField:
                    header = field.Value;
                    break;
                case PlanField:
                    plan = field.Value;
                    break;
                default:
                    if (name.StartsWith(StepPrefix, StringComparison.Ordinal))
                    {
                        steps[name[StepPrefix.Length..]] = (byte[])field.Value!;
                    }

                    break;
            }
        }

        if (version is null || header is null || plan is null)
        {
            throw new InvalidOperationException($"run {grain}: stored record {key} lacks its version, header or plan");
        }

        var run = serializer.Deserialize<RunState>(header)!;
        run.Plan = serializer.Deserialize<RunPlan>(plan)!;
        run.Steps = new List<StepState>(run.Plan.Pipeline.Steps.Count);
        foreach (var spec in run.Plan.Pipeline.Steps)
        {
            run.Steps.Add(steps.TryGetValue(spec.Id, out var bytes)
                ? serializer.Deserialize<StepState>(bytes)!
                : throw new InvalidOperationException($"run {grain}: stored record {key} lacks step {spec.Id}"));
        }

        return new StoredRun(run, version);
    }

    /// <inheritdoc />
    public async Task<string> WriteAsync(GrainId grain, RunState run, string? expectedVersion, RunChanges changes)
    {
        ArgumentNullException.ThrowIfNull(run);
        ArgumentNullException.ThrowIfNull(changes);
        var version = NewVersion();
        var steps = changes.Steps ?? run.Steps;
        var values = new RedisValue[2 + 2 + (changes.IncludePlan ? 2 : 0) + (2 * steps.Count)];
        var i = 0;
        values[i++] = expectedVersion ?? "";
        values[i++] = version;
        values[i++] = HeaderField;
        values[i++] = SerializeHeader(run);
        if (changes.IncludePlan)
        {
            values[i++] = PlanField;
            values[i++] = serializer.SerializeToArray(run.Plan);
        }

        foreach (var step in steps)
        {
            values[i++] = StepPrefix + step.Id;
            values[i++] = serializer.SerializeToArray(step);
        }

        RedisKey[] keys = [Key(grain)];
        var applied = await faults.Redis.ExecuteAsync(
            static async (s, _) =>
            {
                // Through the connection's write path: with Conveyor:Redis:ReplicaAcks it returns only once replicas hold it.
                return (long)await s.redis.WriteAsync(static (db, a) => db.ScriptEvaluateAsync(WriteScript, a.keys, a.values), (s.keys, s.values)).ConfigureAwait(false);
            },
            (redis, keys, values)).ConfigureAwait(false);
        if (applied != 1)
        {
            throw new RunStoreConflictException($"run {grain} was written by another activation (expected version {expectedVersion ?? "none"})");
        }

        return version;
    }

    /// <inheritdoc />
    public async Task DeleteAsync(GrainId grain)
    {
        var key = Key(grain);
        await faults.Redis.ExecuteAsync(
            static async (s, _) => await (await s.redis.GetDatabaseAsync().ConfigureAwait(false)).KeyDeleteAsync(s.key).ConfigureAwait(false),
            (redis, key)).ConfigureAwait(false);
        if (legacy is not null)
        {
            // A run moved here from the earlier whole-state layout left its old record behind.
            await legacy.DeleteAsync(grain).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The run without its plan and steps, which have fields of their own. They are detached for the synchronous
    /// serialization only; a grain turn is single-threaded, so nothing observes the run meanwhile.
    /// </summary>
    private byte[] SerializeHeader(RunState run)
    {
        var (plan, steps) = (run.Plan, run.Steps);
        (run.Plan, run.Steps) = (NoPlan, NoSteps);
        try
        {
            return serializer.SerializeToArray(run);
        }
        finally
        {
            (run.Plan, run.Steps) = (plan, steps);
        }
    }

    // A version only has to differ from every other write's, in every silo: a random prefix drawn once per process and
    // a counter. Drawing 8 random bytes per write from the operating system's generator was 2% of the silo's CPU
    // samples under load.
    private static readonly string s_versionPrefix = Convert.ToHexString(RandomNumberGenerator.GetBytes(8));
    private static long s_writes;

    private static string NewVersion() =>
        string.Create(32, (ulong)Interlocked.Increment(ref s_writes), static (span, n) =>
        {
            s_versionPrefix.CopyTo(span);
            n.TryFormat(span[16..], out _, "x16", System.Globalization.CultureInfo.InvariantCulture);
        });

    private RedisKey Key(GrainId grain) => _prefix + grain.GetGuidKey().ToString("N");
}
