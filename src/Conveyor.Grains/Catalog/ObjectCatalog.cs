using System.Text;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Resilience;
using Conveyor.Grains.Runs;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using StackExchange.Redis;

namespace Conveyor.Grains.Catalog;

/// <summary>The kinds of object the catalog lists.</summary>
public enum CatalogKind
{
    /// <summary>Resource definitions; member: the name.</summary>
    Definition,

    /// <summary>Pipelines; member: the name; filter: the resource type.</summary>
    Pipeline,

    /// <summary>Resources; member: <c>{type}/{name}</c>; filter: the pipeline.</summary>
    Resource,
}

/// <summary>One object's place in the catalog: its namespace, kind, member and the value of its kind's filter.</summary>
/// <param name="Namespace">Namespace of the object.</param>
/// <param name="Kind">Kind of object.</param>
/// <param name="Member">Its member: a name, or <c>{type}/{name}</c> for a resource (so a type is a prefix).</param>
/// <param name="Filter">The value it is also listed under (resource type of a pipeline, pipeline of a resource).</param>
[GenerateSerializer]
[Alias("conveyor.CatalogEntry")]
public sealed record CatalogEntry(
    [property: Id(0)] string Namespace,
    [property: Id(1)] CatalogKind Kind,
    [property: Id(2)] string Member,
    [property: Id(3)] string? Filter)
{
    /// <summary>The entry of a resource definition.</summary>
    public static CatalogEntry Definition(string ns, string name) => new(ns, CatalogKind.Definition, name, null);

    /// <summary>The entry of a pipeline, listed under its resource type too.</summary>
    public static CatalogEntry Pipeline(string ns, PipelineSpec pipeline) => new(ns, CatalogKind.Pipeline, pipeline.Name, pipeline.ResourceType);

    /// <summary>The entry of a resource, listed under its pipeline too (when it has one).</summary>
    public static CatalogEntry Resource(string ns, ResourceData resource) =>
        new(ns, CatalogKind.Resource, resource.Type + "/" + resource.Name, string.IsNullOrEmpty(resource.Pipeline) ? null : resource.Pipeline);
}

/// <summary>One page of members, in order, with the cursor of the next page.</summary>
/// <param name="Members">The members on this page.</param>
/// <param name="NextCursor">Opaque cursor of the next page; null on the last page.</param>
public sealed record CatalogPage(IReadOnlyList<string> Members, string? NextCursor);

/// <summary>
/// Lists definitions, pipelines and resources of a namespace by name, with a cursor, a name prefix and one filter
/// per kind. The grains own their entries and keep one rule, so that a silo dying between two writes leaves at worst
/// an entry with no object behind it: an entry is added before the object is stored and removed after it is
/// deleted; a listing asks the grain of an entry that shows nothing (or something else) to repair it, and a grain
/// re-adds its entry when it activates.
/// </summary>
public interface IObjectCatalog
{
    /// <summary>Whether listing is available (it needs Redis).</summary>
    bool IsAvailable { get; }

    /// <summary>Adds the entry (and its filter entry); idempotent.</summary>
    Task AddAsync(CatalogEntry entry);

    /// <summary>Removes the entry and its filter entry; idempotent.</summary>
    Task RemoveAsync(CatalogEntry entry);

    /// <summary>Removes only the filter entry (the object now has another filter value); idempotent.</summary>
    Task RemoveFilterAsync(CatalogEntry entry);

    /// <summary>
    /// A page of members in ascending order, of every object of <paramref name="kind"/> or only of those listed under
    /// <paramref name="filter"/>, starting with <paramref name="prefix"/>. <see cref="ConveyorValidationException"/>
    /// for a malformed cursor.
    /// </summary>
    Task<CatalogPage> ListAsync(string ns, CatalogKind kind, string? filter, string? prefix, string? cursor, int limit);
}

/// <summary>The catalog when grain state is not in Redis: listing is unavailable, everything else works.</summary>
public sealed class NoObjectCatalog : IObjectCatalog
{
    /// <inheritdoc />
    public bool IsAvailable => false;

    /// <inheritdoc />
    public Task AddAsync(CatalogEntry entry) => Task.CompletedTask;

    /// <inheritdoc />
    public Task RemoveAsync(CatalogEntry entry) => Task.CompletedTask;

    /// <inheritdoc />
    public Task RemoveFilterAsync(CatalogEntry entry) => Task.CompletedTask;

    /// <inheritdoc />
    public Task<CatalogPage> ListAsync(string ns, CatalogKind kind, string? filter, string? prefix, string? cursor, int limit) =>
        Task.FromResult(new CatalogPage([], null));
}

/// <summary>
/// <see cref="IObjectCatalog"/> on Redis sorted sets whose members all have score 0, read by lexical range
/// (<c>ZRANGEBYLEX</c>): a page, with or without a prefix or filter, costs O(log n + page size) whatever the number
/// of objects. Names are DNS labels, so <c>/</c> never occurs in one and <c>{type}/</c> is an exact prefix.
/// </summary>
public sealed class RedisObjectCatalog(ConveyorRedis redis, IOptions<ClusterOptions> cluster, TransientFaults faults) : IObjectCatalog
{
    private readonly string _prefix = $"conveyor:{cluster.Value.ServiceId}:";
    private readonly ConveyorRedis _redis = redis;

    /// <inheritdoc />
    public bool IsAvailable => true;

    /// <inheritdoc />
    public Task AddAsync(CatalogEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        return Retry(entry, static async (db, self, e) =>
        {
            var tx = db.CreateTransaction();
            _ = tx.SortedSetAddAsync(self.Key(e.Namespace, e.Kind, null), e.Member, 0);
            if (e.Filter is { } filter)
            {
                _ = tx.SortedSetAddAsync(self.Key(e.Namespace, e.Kind, filter), e.Member, 0);
            }

            await tx.ExecuteAsync().ConfigureAwait(false);
        });
    }

    /// <inheritdoc />
    public Task RemoveAsync(CatalogEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        return Retry(entry, static async (db, self, e) =>
        {
            var tx = db.CreateTransaction();
            _ = tx.SortedSetRemoveAsync(self.Key(e.Namespace, e.Kind, null), e.Member);
            if (e.Filter is { } filter)
            {
                _ = tx.SortedSetRemoveAsync(self.Key(e.Namespace, e.Kind, filter), e.Member);
            }

            await tx.ExecuteAsync().ConfigureAwait(false);
        });
    }

    /// <inheritdoc />
    public Task RemoveFilterAsync(CatalogEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        return entry.Filter is not { } filter
            ? Task.CompletedTask
            : Retry(entry, async (db, self, e) => await db.SortedSetRemoveAsync(self.Key(e.Namespace, e.Kind, filter), e.Member).ConfigureAwait(false));
    }

    /// <inheritdoc />
    public Task<CatalogPage> ListAsync(string ns, CatalogKind kind, string? filter, string? prefix, string? cursor, int limit)
    {
        // A malformed cursor is the caller's mistake: rejected before any Redis call, never retried.
        var after = CatalogCursor.Parse(cursor, kind);
        return faults.Redis.ExecuteAsync(
            static async (s, _) =>
            {
                var db = await s.Self._redis.GetDatabaseAsync().ConfigureAwait(false);
                return await s.Self.ListCoreAsync(db, s.ns, s.kind, s.filter, s.prefix, s.after, s.limit).ConfigureAwait(false);
            },
            (Self: this, ns, kind, filter, prefix, after, limit)).AsTask();
    }

    private async Task<CatalogPage> ListCoreAsync(IDatabase db, string ns, CatalogKind kind, string? filter, string? prefix, string? after, int limit)
    {
        RedisValue min = default;
        var exclude = Exclude.None;
        if (after is not null && (prefix is null || string.CompareOrdinal(after, prefix) >= 0))
        {
            min = after;
            exclude = Exclude.Start;
        }
        else if (prefix is not null)
        {
            min = prefix;
        }

        // Every character of a member is ASCII, so U+FFFF (three bytes, 0xEF…) sorts after anything that starts with the prefix.
        RedisValue max = prefix is null ? default : prefix + "\uffff";
        var members = await db.SortedSetRangeByValueAsync(Key(ns, kind, filter), min, max, exclude, Order.Ascending, 0, limit + 1).ConfigureAwait(false);
        var page = members.Take(limit).Select(m => m.ToString()).ToList();
        var next = members.Length > limit ? CatalogCursor.Format(page[^1]) : null;
        return new CatalogPage(page, next);
    }

    private Task Retry(CatalogEntry entry, Func<IDatabase, RedisObjectCatalog, CatalogEntry, Task> write) =>
        faults.Redis.ExecuteAsync(
            static async (s, _) =>
            {
                var db = await s.Self._redis.GetDatabaseAsync().ConfigureAwait(false);
                await s.write(db, s.Self, s.entry).ConfigureAwait(false);
            },
            (Self: this, entry, write)).AsTask();

    private string Key(string ns, CatalogKind kind, string? filter) =>
        _prefix + ns + ":catalog:" + kind.ToString().ToLowerInvariant() + (filter is null ? "" : ":by:" + filter);
}

/// <summary>The opaque cursor of a catalog listing: the last member shown, base64url-encoded.</summary>
public static class CatalogCursor
{
    /// <summary>The cursor after <paramref name="member"/>.</summary>
    public static string Format(string member) =>
        Convert.ToBase64String(Encoding.UTF8.GetBytes(member)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    /// <summary>The member a cursor stands for; null for none; <see cref="ConveyorValidationException"/> for a cursor this listing never gave.</summary>
    public static string? Parse(string? cursor, CatalogKind kind)
    {
        if (string.IsNullOrEmpty(cursor))
        {
            return null;
        }

        string? member = null;
        if (cursor.Length <= 200)
        {
            var base64 = cursor.Replace('-', '+').Replace('_', '/');
            base64 = base64.PadRight(base64.Length + ((4 - (base64.Length % 4)) % 4), '=');
            var bytes = new byte[base64.Length];
            if (Convert.TryFromBase64String(base64, bytes, out var written))
            {
                member = Encoding.UTF8.GetString(bytes, 0, written);
            }
        }

        var valid = member is not null && (kind == CatalogKind.Resource
            ? member.Split('/') is [var type, var name] && Names.IsValid(type) && Names.IsValid(name)
            : Names.IsValid(member));
        return valid ? member : throw new ConveyorValidationException("cursor", "'cursor' is not a cursor returned by this listing");
    }
}
