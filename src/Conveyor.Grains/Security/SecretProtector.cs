using System.Buffers.Binary;
using System.ComponentModel.DataAnnotations;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Conveyor.Grains.Abstractions;
using Microsoft.Extensions.Options;

namespace Conveyor.Grains.Security;

/// <summary>Secrets at rest and step tokens (configuration section <c>Conveyor:Secrets</c>).</summary>
public sealed class ConveyorSecretsOptions
{
    /// <summary>Configuration section.</summary>
    public const string Section = "Conveyor:Secrets";

    /// <summary>
    /// 32 random bytes, base64: the AES-256-GCM key of secret values at rest, from which the step-token signing key is
    /// also derived. Never logged. Without it (and without <see cref="KeyFile"/>) secrets are unavailable.
    /// </summary>
    public string? Key { get; set; }

    /// <summary>A file holding the key, created with a random key when absent (single-node mode uses the data directory).</summary>
    public string? KeyFile { get; set; }

    /// <summary>How long a step token stays valid after its dispatch (it also dies when its attempt ends).</summary>
    [Range(typeof(TimeSpan), "00:00:10", "7.00:00:00")]
    public TimeSpan TokenLifetime { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Redacts the key.</summary>
    public override string ToString() => $"Key={(string.IsNullOrEmpty(Key) ? "" : "***")}, KeyFile={KeyFile}, TokenLifetime={TokenLifetime}";
}

/// <summary>What a valid step token grants: fetching the secrets of one attempt of one step of one run.</summary>
/// <param name="RunId">The run.</param>
/// <param name="Step">The step id.</param>
/// <param name="Attempt">The attempt number.</param>
/// <param name="ExpiresAt">When the token stops being valid.</param>
internal sealed record StepTokenClaims(Guid RunId, string Step, int Attempt, DateTimeOffset ExpiresAt);

/// <summary>
/// Encrypts secret values with AES-256-GCM (the secret's namespace and name as associated data, so a ciphertext is
/// only valid in its own slot) and mints/verifies step tokens: <c>cvs1.&lt;payload&gt;.&lt;HMAC-SHA256&gt;</c>, base64url,
/// where the payload is <c>run|step|attempt|expiry</c>. The token is what a dispatch carries instead of values.
/// </summary>
public sealed class SecretProtector
{
    private const string TokenPrefix = "cvs1.";
    private const int NonceSize = 12;
    private const int TagSize = 16;

    private readonly Lazy<(byte[] Encryption, byte[] Signing)?> _keys;
    private readonly ConveyorSecretsOptions _options;
    private readonly TimeProvider _time;

    /// <summary>Creates the protector from options.</summary>
    public SecretProtector(IOptions<ConveyorSecretsOptions> options, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        _time = time;
        _keys = new Lazy<(byte[], byte[])?>(LoadKeys, LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <summary>Whether a key is configured, so secrets can be stored and step tokens minted.</summary>
    public bool IsAvailable => _keys.Value is not null;

    /// <summary>Encrypts <paramref name="value"/> for the slot <paramref name="ns"/>/<paramref name="name"/>.</summary>
    public byte[] Encrypt(string ns, string name, string value)
    {
        var key = Keys().Encryption;
        var plaintext = Encoding.UTF8.GetBytes(value);
        var blob = new byte[NonceSize + TagSize + plaintext.Length];
        var nonce = blob.AsSpan(0, NonceSize);
        RandomNumberGenerator.Fill(nonce);
        using var aes = new AesGcm(key, TagSize);
        aes.Encrypt(nonce, plaintext, blob.AsSpan(NonceSize + TagSize), blob.AsSpan(NonceSize, TagSize), Slot(ns, name));
        CryptographicOperations.ZeroMemory(plaintext);
        return blob;
    }

    /// <summary>Decrypts a value stored by <see cref="Encrypt"/> for the same slot.</summary>
    /// <exception cref="CryptographicException">Wrong key or slot, or tampered data.</exception>
    public string Decrypt(string ns, string name, byte[] blob)
    {
        ArgumentNullException.ThrowIfNull(blob);
        var key = Keys().Encryption;
        var plaintext = new byte[blob.Length - NonceSize - TagSize];
        using var aes = new AesGcm(key, TagSize);
        aes.Decrypt(blob.AsSpan(0, NonceSize), blob.AsSpan(NonceSize + TagSize), blob.AsSpan(NonceSize, TagSize), plaintext, Slot(ns, name));
        return Encoding.UTF8.GetString(plaintext);
    }

    /// <summary>A token for one attempt of one step, valid for <see cref="ConveyorSecretsOptions.TokenLifetime"/>; null without a key.</summary>
    public string? MintStepToken(Guid runId, string step, int attempt)
    {
        if (_keys.Value is not { } keys)
        {
            return null;
        }

        var expires = _time.GetUtcNow().Add(_options.TokenLifetime).ToUnixTimeSeconds();
        var payload = Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{runId:D}|{step}|{attempt}|{expires}"));
        return TokenPrefix + Base64Url(payload) + "." + Base64Url(HMACSHA256.HashData(keys.Signing, payload));
    }

    /// <summary>Verifies a step token's signature and expiry.</summary>
    internal bool TryVerifyStepToken(string? token, out StepTokenClaims? claims)
    {
        claims = null;
        if (_keys.Value is not { } keys || token is null || token.Length > 512 || !token.StartsWith(TokenPrefix, StringComparison.Ordinal))
        {
            return false;
        }

        var parts = token[TokenPrefix.Length..].Split('.');
        if (parts.Length != 2 || !TryFromBase64Url(parts[0], out var payload) || !TryFromBase64Url(parts[1], out var mac))
        {
            return false;
        }

        if (!CryptographicOperations.FixedTimeEquals(HMACSHA256.HashData(keys.Signing, payload), mac))
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

    private (byte[] Encryption, byte[] Signing) Keys() =>
        _keys.Value ?? throw new ConveyorConflictException("secrets are not configured: set Conveyor:Secrets:Key (32 random bytes, base64)");

    private (byte[] Encryption, byte[] Signing)? LoadKeys()
    {
        var master = ReadMasterKey();
        if (master is null)
        {
            return null;
        }

        // Separate keys for separate purposes, both from the one configured secret.
        var encryption = HKDF.DeriveKey(HashAlgorithmName.SHA256, master, 32, info: "conveyor secrets at rest"u8.ToArray());
        var signing = HKDF.DeriveKey(HashAlgorithmName.SHA256, master, 32, info: "conveyor step tokens"u8.ToArray());
        return (encryption, signing);
    }

    private byte[]? ReadMasterKey()
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

    private static string Base64Url(ReadOnlySpan<byte> bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

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
}
