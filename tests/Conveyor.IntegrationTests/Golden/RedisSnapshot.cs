using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using StackExchange.Redis;

namespace Conveyor.IntegrationTests.Golden;

/// <summary>
/// Every key of a Redis database as data: type, and each byte string (key, field, member, value) as text when it is
/// printable UTF-8, else as <c>base64:</c> and its bytes. Independent of Redis' own dump format (which changes with
/// its version), so a snapshot taken by one release restores into any later redis-server exactly.
/// </summary>
public static class RedisSnapshot
{
    private const string Base64Prefix = "base64:";

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>One key.</summary>
    public sealed record Entry
    {
        /// <summary>The key.</summary>
        public string Key { get; init; } = "";

        /// <summary>string, hash, set, zset or list.</summary>
        public string Type { get; init; } = "";

        /// <summary>A string's value.</summary>
        public string? Value { get; init; }

        /// <summary>A hash's fields.</summary>
        public SortedDictionary<string, string>? Fields { get; init; }

        /// <summary>A set's members, or a list's items in order.</summary>
        public List<string>? Items { get; init; }

        /// <summary>A sorted set's members with their scores.</summary>
        public SortedDictionary<string, double>? Scores { get; init; }
    }

    /// <summary>Reads every key of database 0 that has no expiry (expiring keys, such as rate-limit buckets, are transient).</summary>
    public static async Task<List<Entry>> TakeAsync(string connectionString)
    {
        await using var redis = await ConnectionMultiplexer.ConnectAsync(connectionString + ",allowAdmin=true");
        var db = redis.GetDatabase();
        var server = redis.GetServers()[0];
        var entries = new List<Entry>();
        await foreach (var key in server.KeysAsync(pattern: "*", pageSize: 1000))
        {
            if (await db.KeyTimeToLiveAsync(key) is not null)
            {
                continue;
            }

            var type = await db.KeyTypeAsync(key);
            var name = Encode(key);
            entries.Add(type switch
            {
                RedisType.String => new Entry { Key = name, Type = "string", Value = Encode(await db.StringGetAsync(key)) },
                RedisType.Hash => new Entry
                {
                    Key = name,
                    Type = "hash",
                    Fields = new SortedDictionary<string, string>(
                        (await db.HashGetAllAsync(key)).ToDictionary(f => Encode(f.Name), f => Encode(f.Value)), StringComparer.Ordinal),
                },
                RedisType.Set => new Entry
                {
                    Key = name, Type = "set", Items = (await db.SetMembersAsync(key)).Select(Encode).Order(StringComparer.Ordinal).ToList(),
                },
                RedisType.SortedSet => new Entry
                {
                    Key = name,
                    Type = "zset",
                    Scores = new SortedDictionary<string, double>(
                        (await db.SortedSetRangeByRankWithScoresAsync(key)).ToDictionary(e => Encode(e.Element), e => e.Score), StringComparer.Ordinal),
                },
                RedisType.List => new Entry { Key = name, Type = "list", Items = (await db.ListRangeAsync(key)).Select(Encode).ToList() },
                _ => throw new InvalidOperationException($"key {name} has type {type}, which a snapshot does not hold"),
            });
        }

        entries.Sort((a, b) => string.CompareOrdinal(a.Key, b.Key));
        return entries;
    }

    /// <summary>Writes every entry into the database (which should be empty).</summary>
    public static async Task RestoreAsync(string connectionString, IEnumerable<Entry> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        await using var redis = await ConnectionMultiplexer.ConnectAsync(connectionString);
        var db = redis.GetDatabase();
        foreach (var e in entries)
        {
            RedisKey key = Decode(e.Key);
            switch (e.Type)
            {
                case "string":
                    await db.StringSetAsync(key, Decode(e.Value!));
                    break;
                case "hash":
                    await db.HashSetAsync(key, e.Fields!.Select(f => new HashEntry(Decode(f.Key), Decode(f.Value))).ToArray());
                    break;
                case "set":
                    await db.SetAddAsync(key, e.Items!.Select(i => (RedisValue)Decode(i)).ToArray());
                    break;
                case "zset":
                    await db.SortedSetAddAsync(key, e.Scores!.Select(s => new SortedSetEntry(Decode(s.Key), s.Value)).ToArray());
                    break;
                case "list":
                    await db.ListRightPushAsync(key, e.Items!.Select(i => (RedisValue)Decode(i)).ToArray());
                    break;
                default:
                    throw new InvalidOperationException($"key {e.Key}: unknown type {e.Type}");
            }
        }
    }

    /// <summary>Writes a snapshot as indented JSON.</summary>
    public static Task SaveAsync(string path, List<Entry> entries) =>
        File.WriteAllTextAsync(path, JsonSerializer.Serialize(entries, Json) + "\n");

    /// <summary>Reads a snapshot written by <see cref="SaveAsync"/>.</summary>
    public static async Task<List<Entry>> LoadAsync(string path) =>
        JsonSerializer.Deserialize<List<Entry>>(await File.ReadAllTextAsync(path), Json)
            ?? throw new InvalidOperationException($"{path} holds no snapshot");

    private static string Encode(RedisKey key) => Encode((byte[])key!);

    private static string Encode(RedisValue value) => Encode((byte[])value!);

    private static string Encode(byte[] bytes)
    {
        string text;
        try
        {
            text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            return Base64Prefix + Convert.ToBase64String(bytes);
        }

        return text.StartsWith(Base64Prefix, StringComparison.Ordinal) || text.Any(c => char.IsControl(c) && c is not ('\n' or '\t'))
            ? Base64Prefix + Convert.ToBase64String(bytes)
            : text;
    }

    private static byte[] Decode(string text) =>
        text.StartsWith(Base64Prefix, StringComparison.Ordinal)
            ? Convert.FromBase64String(text[Base64Prefix.Length..])
            : Encoding.UTF8.GetBytes(text);
}
