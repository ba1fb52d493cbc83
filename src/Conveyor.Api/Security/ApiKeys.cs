using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using System.Text;

namespace Conveyor.Api.Security;

/// <summary>
/// API key format <c>cvk_&lt;id&gt;_&lt;secret&gt;</c>: the id (16 hex) names the stored key, the secret (32 random bytes,
/// base64url) is only ever stored as its SHA-256 — a plain hash is enough for a high-entropy random secret.
/// </summary>
internal static class ApiKeys
{
    /// <summary>Prefix of every key.</summary>
    public const string Prefix = "cvk_";

    /// <summary>A new random key: its id and the full key string.</summary>
    public static (string Id, string Key) Generate()
    {
        var id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        var secret = Base64Url(RandomNumberGenerator.GetBytes(32));
        return (id, $"{Prefix}{id}_{secret}");
    }

    /// <summary>Splits a key into id and secret; false when it is not in the key format.</summary>
    public static bool TryParse(string? key, [NotNullWhen(true)] out string? id, [NotNullWhen(true)] out string? secret)
    {
        id = null;
        secret = null;
        if (key is null || !key.StartsWith(Prefix, StringComparison.Ordinal) || key.Length > 200)
        {
            return false;
        }

        var rest = key.AsSpan(Prefix.Length);
        var underscore = rest.IndexOf('_');
        if (underscore is < 1 or > 64 || underscore == rest.Length - 1)
        {
            return false;
        }

        var idPart = rest[..underscore];
        foreach (var c in idPart)
        {
            if (!char.IsAsciiLetterOrDigit(c) || char.IsAsciiLetterUpper(c))
            {
                return false;
            }
        }

        id = idPart.ToString();
        secret = rest[(underscore + 1)..].ToString();
        return true;
    }

    /// <summary>SHA-256 of a secret.</summary>
    public static byte[] Hash(string secret) => SHA256.HashData(Encoding.UTF8.GetBytes(secret));

    /// <summary>Whether <paramref name="secret"/> hashes to <paramref name="hash"/>, in constant time.</summary>
    public static bool Matches(string secret, byte[] hash) => CryptographicOperations.FixedTimeEquals(Hash(secret), hash);

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
