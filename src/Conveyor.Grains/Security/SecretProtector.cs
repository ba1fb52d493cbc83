using System.ComponentModel.DataAnnotations;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Conveyor.Grains.Abstractions;
using Microsoft.Extensions.Options;

namespace Conveyor.Grains.Security;

/// <summary>Secrets at rest and step tokens (configuration section <c>Conveyor:Secrets</c>).</summary>
public sealed class ConveyorSecretsOptions
{
    /// <summary>Configuration section.</summary>
    public const string Section = "Conveyor:Secrets";

    /// <summary>
    /// 32 random bytes, base64: the key with id <see cref="SecretProtector.DefaultKeyId"/>, the one every value stored
    /// before key ids existed was encrypted with. Never logged. Without any key secrets are unavailable.
    /// </summary>
    public string? Key { get; set; }

    /// <summary>A file holding the <c>default</c> key, created with a random key when absent (single-node mode uses the data directory).</summary>
    public string? KeyFile { get; set; }

    /// <summary>
    /// More keys by id (<c>Conveyor:Secrets:Keys:&lt;id&gt;</c>, 32 random bytes, base64 each): the key ring. Every
    /// stored value names the key it was encrypted with, so old keys keep decrypting while values move to the primary.
    /// </summary>
    public Dictionary<string, string> Keys { get; set; } = new(StringComparer.Ordinal);

    /// <summary>
    /// Id of the key that encrypts new values and signs step tokens. Default: <c>default</c> when <see cref="Key"/> or
    /// <see cref="KeyFile"/> is set, else the only entry of <see cref="Keys"/>.
    /// </summary>
    public string? PrimaryKeyId { get; set; }

    /// <summary>
    /// Longest a step token stays valid after its dispatch; a step with a shorter timeout gets a token that expires
    /// with it, and every token dies when its attempt ends.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:10", "7.00:00:00")]
    public TimeSpan TokenLifetime { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>Redacts the keys.</summary>
    public override string ToString() =>
        $"Key={(string.IsNullOrEmpty(Key) ? "" : "***")}, KeyFile={KeyFile}, Keys=[{string.Join(", ", Keys.Keys)}], PrimaryKeyId={PrimaryKeyId}, TokenLifetime={TokenLifetime}";
}

/// <summary>What a valid step token grants: fetching the secrets of one attempt of one step of one run.</summary>
/// <param name="RunId">The run.</param>
/// <param name="Step">The step id.</param>
/// <param name="Attempt">The attempt number.</param>
/// <param name="ExpiresAt">When the token stops being valid.</param>
internal sealed record StepTokenClaims(Guid RunId, string Step, int Attempt, DateTimeOffset ExpiresAt);

/// <summary>A value encrypted by <see cref="SecretProtector"/>, and the id of the key that did it.</summary>
/// <param name="Blob">Nonce, tag and ciphertext (AES-256-GCM).</param>
/// <param name="KeyId">The key's id in the key ring.</param>
internal readonly record struct Ciphertext(byte[] Blob, string KeyId);

/// <summary>
/// Encrypts secret values with AES-256-GCM (the value's slot — namespace and name — as associated data, so a
/// ciphertext is only valid in its own slot) under a key ring, and mints/verifies step tokens:
/// <c>cvs1.&lt;payload&gt;.&lt;HMAC-SHA256&gt;</c>, base64url, where the payload is <c>run|step|attempt|expiry</c>.
/// The token is what a dispatch carries instead of values.
/// </summary>
/// <remarks>
/// Rotation: add a key under a new id, make it primary, restart, re-encrypt (<c>POST /secrets/reencrypt</c>), then
/// drop the old key. Each stored value names its key; a value whose key is missing, or that does not decrypt under
/// it, is a 409 naming the key — never a 500.
/// </remarks>
internal sealed partial class SecretProtector
{
    /// <summary>Id of <see cref="ConveyorSecretsOptions.Key"/> and of values stored before key ids existed.</summary>
    internal const string DefaultKeyId = "default";

    private const string TokenPrefix = "cvs1.";
    private const int NonceSize = 12;
    private const int TagSize = 16;

    private readonly Lazy<KeyRing?> _ring;
    private readonly ConveyorSecretsOptions _options;
    private readonly TimeProvider _time;

    /// <summary>Creates the protector from options.</summary>
    public SecretProtector(IOptions<ConveyorSecretsOptions> options, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        _time = time;
        _ring = new Lazy<KeyRing?>(LoadRing, LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <summary>Whether a key is configured, so secrets can be stored and step tokens minted.</summary>
    public bool IsAvailable => _ring.Value is not null;

    /// <summary>Id of the key new values are encrypted with.</summary>
    internal string PrimaryKeyId => Ring().Primary;

    /// <summary>Encrypts <paramref name="value"/> for the slot <paramref name="ns"/>/<paramref name="name"/> with the primary key.</summary>
    internal Ciphertext Encrypt(string ns, string name, string value)
    {
        var ring = Ring();
        var key = ring.Keys[ring.Primary].Encryption;
        var plaintext = Encoding.UTF8.GetBytes(value);
        var blob = new byte[NonceSize + TagSize + plaintext.Length];
        var nonce = blob.AsSpan(0, NonceSize);
        RandomNumberGenerator.Fill(nonce);
        using var aes = new AesGcm(key, TagSize);
        aes.Encrypt(nonce, plaintext, blob.AsSpan(NonceSize + TagSize), blob.AsSpan(NonceSize, TagSize), Slot(ns, name));
        CryptographicOperations.ZeroMemory(plaintext);
        return new Ciphertext(blob, ring.Primary);
    }

    /// <summary>Decrypts a value stored by <see cref="Encrypt"/> for the same slot, with the key it names (null: <c>default</c>).</summary>
    /// <exception cref="ConveyorConflictException">The key is not configured, or the value does not decrypt under it.</exception>
    internal string Decrypt(string ns, string name, byte[] blob, string? keyId)
    {
        ArgumentNullException.ThrowIfNull(blob);
        var id = keyId ?? DefaultKeyId;
        if (!Ring().Keys.TryGetValue(id, out var keys))
        {
            throw new ConveyorConflictException($"secret {name} is encrypted with key '{id}', which is not configured (Conveyor:Secrets:Keys:{id})");
        }

        try
        {
            var plaintext = new byte[blob.Length - NonceSize - TagSize];
            using var aes = new AesGcm(keys.Encryption, TagSize);
            aes.Decrypt(blob.AsSpan(0, NonceSize), blob.AsSpan(NonceSize + TagSize), blob.AsSpan(NonceSize, TagSize), plaintext, Slot(ns, name));
            return Encoding.UTF8.GetString(plaintext);
        }
        catch (Exception ex) when (ex is CryptographicException or OverflowException or ArgumentException)
        {
            throw new ConveyorConflictException($"secret {name} does not decrypt with key '{id}': the key configured under that id is not the one it was stored with");
        }
    }

    /// <summary>
    /// A token for one attempt of one step, valid for <see cref="ConveyorSecretsOptions.TokenLifetime"/> or
    /// <paramref name="attemptTimeout"/>, whichever is shorter (the server also refuses it once the attempt ended);
    /// null without a key.
    /// </summary>
    public string? MintStepToken(Guid runId, string step, int attempt, TimeSpan? attemptTimeout = null)
    {
        if (_ring.Value is not { } ring)
        {
            return null;
        }

        var lifetime = attemptTimeout is { } t && t > TimeSpan.Zero && t < _options.TokenLifetime ? t : _options.TokenLifetime;
        var expires = _time.GetUtcNow().Add(lifetime).ToUnixTimeSeconds();
        var signing = ring.Keys[ring.Primary].Signing;
        // Formatted and signed on the stack, the token written as one string: one is minted for every dispatch, and
        // building it through strings and arrays allocated about ten objects each time.
        // The buffer holds the longest payload the step id allows: the run id, three separators and two numbers take
        // at most 36 + 3 + 11 + 20 bytes. A step id too long for the stack gets the same token from the heap.
        var most = 70 + Encoding.UTF8.GetMaxByteCount(step.Length);
        Span<byte> payload = most <= MaxStackPayload ? stackalloc byte[MaxStackPayload] : new byte[most];
        Span<byte> mac = stackalloc byte[HMACSHA256.HashSizeInBytes];
        if (!System.Text.Unicode.Utf8.TryWrite(payload, CultureInfo.InvariantCulture, $"{runId:D}|{step}|{attempt}|{expires}", out var length))
        {
            throw new InvalidOperationException($"a step token's claims took more than the {payload.Length} bytes reserved for them");
        }

        HMACSHA256.HashData(signing, payload[..length], mac);
        return Token(payload[..length], mac);
    }

    private const int MaxStackPayload = 384;

    /// <summary><c>cvs1.</c>, the payload and the MAC in unpadded base64url, joined by a dot.</summary>
    private static string Token(ReadOnlySpan<byte> payload, ReadOnlySpan<byte> mac)
    {
        var length = TokenPrefix.Length + System.Buffers.Text.Base64Url.GetEncodedLength(payload.Length) + 1 + System.Buffers.Text.Base64Url.GetEncodedLength(mac.Length);
        var chars = length <= 1024 ? stackalloc char[length] : new char[length];
        TokenPrefix.CopyTo(chars);
        var at = TokenPrefix.Length;
        at += System.Buffers.Text.Base64Url.EncodeToChars(payload, chars[at..]);
        chars[at++] = '.';
        at += System.Buffers.Text.Base64Url.EncodeToChars(mac, chars[at..]);
        return new string(chars[..at]);
    }

    /// <summary>Verifies a step token's signature (under any key of the ring, so tokens survive a rotation) and expiry.</summary>
    internal bool TryVerifyStepToken(string? token, out StepTokenClaims? claims)
    {
        claims = null;
        if (_ring.Value is not { } ring || token is null || token.Length > 512 || !token.StartsWith(TokenPrefix, StringComparison.Ordinal))
        {
            return false;
        }

        var parts = token[TokenPrefix.Length..].Split('.');
        if (parts.Length != 2 || !TryFromBase64Url(parts[0], out var payload) || !TryFromBase64Url(parts[1], out var mac))
        {
            return false;
        }

        var signed = false;
        foreach (var keys in ring.Keys.Values)
        {
            signed |= CryptographicOperations.FixedTimeEquals(HMACSHA256.HashData(keys.Signing, payload), mac);
        }

        if (!signed)
        {
            return false;
        }

        var fields = Encoding.UTF8.GetString(payload).Split('|');
        if (fields.Length != 4
            || !Guid.TryParse(fields[0], out var runId)
            || !int.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out var attempt)
            || !long.TryParse(fields[3], NumberStyles.None, CultureInfo.InvariantCulture, out var expires))
        {
            return false;
        }

        var expiresAt = DateTimeOffset.FromUnixTimeSeconds(expires);
        if (expiresAt <= _time.GetUtcNow())
        {
            return false;
        }

        claims = new StepTokenClaims(runId, fields[1], attempt, expiresAt);
        return true;
    }

    private KeyRing Ring() =>
        _ring.Value ?? throw new ConveyorConflictException("secrets are not configured: set Conveyor:Secrets:Key (32 random bytes, base64)");

    private KeyRing? LoadRing()
    {
        var masters = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        if (ReadDefaultKey() is { } legacy)
        {
            masters[DefaultKeyId] = legacy;
        }

        foreach (var (id, value) in _options.Keys)
        {
            if (!KeyIdRegex().IsMatch(id))
            {
                throw new InvalidOperationException($"Invalid Conveyor configuration: Conveyor:Secrets:Keys:{id}: a key id is 1-32 lowercase letters, digits or '-'.");
            }

            if (!masters.TryAdd(id, ParseKey(value, $"Conveyor:Secrets:Keys:{id}")))
            {
                throw new InvalidOperationException($"Invalid Conveyor configuration: key id '{id}' is given twice (Conveyor:Secrets:Key is key '{DefaultKeyId}').");
            }
        }

        if (masters.Count == 0)
        {
            return null;
        }

        var primary = _options.PrimaryKeyId is { Length: > 0 } p ? p
            : masters.ContainsKey(DefaultKeyId) ? DefaultKeyId
            : masters.Count == 1 ? masters.Keys.Single()
            : throw new InvalidOperationException("Invalid Conveyor configuration: several secrets keys are configured; name the one new values use in Conveyor:Secrets:PrimaryKeyId.");
        if (!masters.ContainsKey(primary))
        {
            throw new InvalidOperationException($"Invalid Conveyor configuration: Conveyor:Secrets:PrimaryKeyId names key '{primary}', which is not configured.");
        }

        // Separate keys for separate purposes, both from each configured secret.
        var keys = masters.ToDictionary(
            m => m.Key,
            m => (HKDF.DeriveKey(HashAlgorithmName.SHA256, m.Value, 32, info: "conveyor secrets at rest"u8.ToArray()),
                  HKDF.DeriveKey(HashAlgorithmName.SHA256, m.Value, 32, info: "conveyor step tokens"u8.ToArray())),
            StringComparer.Ordinal);
        return new KeyRing(primary, keys);
    }

    private byte[]? ReadDefaultKey()
    {
        if (!string.IsNullOrWhiteSpace(_options.Key))
        {
            return ParseKey(_options.Key, "Conveyor:Secrets:Key");
        }

        if (string.IsNullOrEmpty(_options.KeyFile))
        {
            return null;
        }

        if (!File.Exists(_options.KeyFile))
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(_options.KeyFile))!);
            var fresh = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
            try
            {
                using var stream = new FileStream(_options.KeyFile, FileMode.CreateNew, FileAccess.Write, FileShare.None);
                if (!OperatingSystem.IsWindows())
                {
                    File.SetUnixFileMode(_options.KeyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
                }

                stream.Write(Encoding.ASCII.GetBytes(fresh));
            }
            catch (IOException) when (File.Exists(_options.KeyFile))
            {
                // Another process created it first: use theirs.
            }
        }

        return ParseKey(File.ReadAllText(_options.KeyFile).Trim(), _options.KeyFile);
    }

    private static byte[] ParseKey(string value, string source)
    {
        try
        {
            var key = Convert.FromBase64String(value.Trim());
            if (key.Length == 32)
            {
                return key;
            }
        }
        catch (FormatException)
        {
        }

        throw new InvalidOperationException($"Invalid Conveyor configuration: the secrets key in {source} must be 32 bytes, base64.");
    }

    private static byte[] Slot(string ns, string name) => Encoding.UTF8.GetBytes(ns + "/" + name);

    private static bool TryFromBase64Url(string text, out byte[] bytes)
    {
        var s = text.Replace('-', '+').Replace('_', '/');
        s = s.PadRight(s.Length + ((4 - (s.Length % 4)) % 4), '=');
        bytes = new byte[s.Length];
        if (Convert.TryFromBase64String(s, bytes, out var written))
        {
            bytes = bytes[..written];
            return true;
        }

        return false;
    }

    [GeneratedRegex("^[a-z0-9][a-z0-9-]{0,31}$", RegexOptions.CultureInvariant)]
    private static partial Regex KeyIdRegex();

    private sealed record KeyRing(string Primary, Dictionary<string, (byte[] Encryption, byte[] Signing)> Keys);
}
