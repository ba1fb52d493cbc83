using System.Text.RegularExpressions;
using Conveyor.Grains.Abstractions;
using Orleans.Concurrency;

namespace Conveyor.Grains.Security;

/// <summary>A namespace's secrets. Key: the namespace. Values go in and, only for a step token's fetch, out.</summary>
[Alias("conveyor.ISecretsGrain")]
internal interface ISecretsGrain : IGrainWithStringKey
{
    /// <summary>Creates or replaces a secret's value (encrypted before it is stored).</summary>
    Task<SecretInfo> PutAsync(string name, string value);

    /// <summary>Names and versions, never values.</summary>
    [ReadOnly]
    [AlwaysInterleave]
    Task<List<SecretInfo>> ListAsync();

    /// <summary>Deletes a secret; false when absent.</summary>
    Task<bool> DeleteAsync(string name);

    /// <summary>The names among <paramref name="names"/> that do not exist.</summary>
    [ReadOnly]
    [AlwaysInterleave]
    Task<List<string>> MissingAsync(List<string> names);

    /// <summary>The current values of <paramref name="names"/>; <see cref="ConveyorNotFoundException"/> naming a missing one.</summary>
    [ReadOnly]
    [AlwaysInterleave]
    Task<Dictionary<string, string>> ResolveAsync(List<string> names);

    /// <summary>
    /// Stores the HMAC key of webhook <paramref name="hook"/> of <paramref name="pipeline"/> (encrypted; never listed);
    /// false when it already was that key.
    /// </summary>
    Task<bool> PutWebhookSecretAsync(string pipeline, string hook, string value);

    /// <summary>The webhook's HMAC key, or null when none is stored.</summary>
    [ReadOnly]
    [AlwaysInterleave]
    Task<string?> GetWebhookSecretAsync(string pipeline, string hook);

    /// <summary>Drops the webhook keys of <paramref name="pipeline"/> whose hook is not in <paramref name="keep"/>.</summary>
    Task RemoveWebhookSecretsAsync(string pipeline, List<string> keep);

    /// <summary>Re-encrypts every value not under the primary key with it; returns how many values moved.</summary>
    Task<ReencryptResult> ReencryptAsync();
}

/// <summary>What <see cref="ISecretsGrain.ReencryptAsync"/> moved to the primary key.</summary>
[GenerateSerializer]
[Alias("conveyor.ReencryptResult")]
internal sealed class ReencryptResult
{
    /// <summary>Secrets re-encrypted.</summary>
    [Id(0)] public int Secrets { get; set; }

    /// <summary>Webhook keys re-encrypted.</summary>
    [Id(1)] public int WebhookSecrets { get; set; }

    /// <summary>Values already under the primary key.</summary>
    [Id(2)] public int Unchanged { get; set; }
}

/// <summary>A stored secret: its ciphertext and version.</summary>
[GenerateSerializer]
[Alias("conveyor.SecretRecord")]
internal sealed class SecretRecord
{
    /// <summary>Nonce, tag and ciphertext (AES-256-GCM).</summary>
    [Id(0)] public byte[] Ciphertext { get; set; } = [];

    /// <summary>When last written.</summary>
    [Id(1)] public DateTimeOffset UpdatedAt { get; set; }

    /// <summary>Write count.</summary>
    [Id(2)] public int Version { get; set; }

    /// <summary>Id of the key that encrypted <see cref="Ciphertext"/>; null for values stored before key ids (key <c>default</c>).</summary>
    [Id(3)] public string? KeyId { get; set; }
}

/// <summary>Stored state of a namespace's secrets.</summary>
[GenerateSerializer]
[Alias("conveyor.SecretsState")]
internal sealed class SecretsState
{
    /// <summary>Secrets by name.</summary>
    [Id(0)] public Dictionary<string, SecretRecord> Secrets { get; set; } = [];

    /// <summary>Webhook HMAC keys by <c>pipeline/hook</c>: never listed, read only to check a delivery's signature.</summary>
    [Id(1)] public Dictionary<string, SecretRecord> Webhooks { get; set; } = [];
}

/// <summary>Secret name rules.</summary>
internal static partial class SecretNames
{
    /// <summary>Longest value accepted, in UTF-8 bytes.</summary>
    public const int MaxValueBytes = 64 * 1024;

    /// <summary>Most secrets one step may reference.</summary>
    public const int MaxPerStep = 32;

    /// <summary>Whether the name is like an environment variable: a letter or '_', then letters, digits, '_' (1–128).</summary>
    public static bool IsValid(string? name) => name is { Length: > 0 and <= 128 } && NameRegex().IsMatch(name);

    /// <summary>Throws a validation error naming <paramref name="field"/> for an invalid name.</summary>
    public static void Validate(string? name, string field)
    {
        if (!IsValid(name))
        {
            throw new ConveyorValidationException(field, $"'{field}' must be 1-128 letters, digits or '_', not starting with a digit (got '{Names.Truncate(name ?? "")}')");
        }
    }

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]*$", RegexOptions.CultureInvariant)]
    private static partial Regex NameRegex();
}

/// <summary>A namespace's secrets, encrypted at rest by <see cref="SecretProtector"/>.</summary>
internal sealed class SecretsGrain(
    [PersistentState("secrets", ConveyorStorage.Name)] IPersistentState<SecretsState> state,
    SecretProtector protector,
    TimeProvider time) : Grain, ISecretsGrain
{
    private string Namespace => this.GetPrimaryKeyString();

    /// <inheritdoc />
    public async Task<SecretInfo> PutAsync(string name, string value)
    {
        SecretNames.Validate(name, "name");
        ArgumentNullException.ThrowIfNull(value);
        var record = state.State.Secrets.GetValueOrDefault(name) ?? new SecretRecord();
        var sealedValue = protector.Encrypt(Namespace, name, value);
        var updated = new SecretRecord
        {
            Ciphertext = sealedValue.Blob,
            KeyId = sealedValue.KeyId,
            UpdatedAt = time.GetUtcNow(),
            Version = record.Version + 1,
        };
        state.State.Secrets[name] = updated;
        await state.WriteStateAsync();
        return Info(name, updated);
    }

    /// <inheritdoc />
    public Task<List<SecretInfo>> ListAsync() =>
        Task.FromResult(state.State.Secrets.OrderBy(s => s.Key, StringComparer.Ordinal).Select(s => Info(s.Key, s.Value)).ToList());

    /// <inheritdoc />
    public async Task<bool> DeleteAsync(string name)
    {
        if (!state.State.Secrets.Remove(name))
        {
            return false;
        }

        await state.WriteStateAsync();
        return true;
    }

    /// <inheritdoc />
    public Task<List<string>> MissingAsync(List<string> names) =>
        Task.FromResult(names.Where(n => !state.State.Secrets.ContainsKey(n)).ToList());

    /// <inheritdoc />
    public Task<Dictionary<string, string>> ResolveAsync(List<string> names)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var name in names)
        {
            var record = state.State.Secrets.GetValueOrDefault(name) ?? throw new ConveyorNotFoundException($"secret {name} not found");
            values[name] = protector.Decrypt(Namespace, name, record.Ciphertext, record.KeyId);
        }

        return Task.FromResult(values);
    }

    /// <inheritdoc />
    public async Task<bool> PutWebhookSecretAsync(string pipeline, string hook, string value)
    {
        ArgumentException.ThrowIfNullOrEmpty(value);
        var slot = WebhookSlot(pipeline, hook);
        var record = state.State.Webhooks.GetValueOrDefault(slot);
        if (record is not null && protector.Decrypt(Namespace, slot, record.Ciphertext, record.KeyId) == value)
        {
            return false;
        }

        var sealedValue = protector.Encrypt(Namespace, slot, value);
        state.State.Webhooks[slot] = new SecretRecord
        {
            Ciphertext = sealedValue.Blob,
            KeyId = sealedValue.KeyId,
            UpdatedAt = time.GetUtcNow(),
            Version = (record?.Version ?? 0) + 1,
        };
        await state.WriteStateAsync();
        return true;
    }

    /// <inheritdoc />
    public Task<string?> GetWebhookSecretAsync(string pipeline, string hook)
    {
        var slot = WebhookSlot(pipeline, hook);
        return Task.FromResult(state.State.Webhooks.TryGetValue(slot, out var record) ? protector.Decrypt(Namespace, slot, record.Ciphertext, record.KeyId) : null);
    }

    /// <inheritdoc />
    public async Task RemoveWebhookSecretsAsync(string pipeline, List<string> keep)
    {
        var prefix = WebhookSlot(pipeline, "");
        var gone = state.State.Webhooks.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal) && !keep.Contains(k[prefix.Length..])).ToList();
        if (gone.Count > 0)
        {
            gone.ForEach(k => state.State.Webhooks.Remove(k));
            await state.WriteStateAsync();
        }
    }

    /// <inheritdoc />
    public async Task<ReencryptResult> ReencryptAsync()
    {
        var result = new ReencryptResult();
        var primary = protector.PrimaryKeyId;
        foreach (var (records, webhooks) in new[] { (state.State.Secrets, false), (state.State.Webhooks, true) })
        {
            foreach (var (slot, record) in records)
            {
                if ((record.KeyId ?? SecretProtector.DefaultKeyId) == primary)
                {
                    result.Unchanged++;
                    continue;
                }

                var moved = protector.Encrypt(Namespace, slot, protector.Decrypt(Namespace, slot, record.Ciphertext, record.KeyId));
                record.Ciphertext = moved.Blob;
                record.KeyId = moved.KeyId;
                if (webhooks)
                {
                    result.WebhookSecrets++;
                }
                else
                {
                    result.Secrets++;
                }
            }
        }

        if (result.Secrets + result.WebhookSecrets > 0)
        {
            await state.WriteStateAsync();
        }

        return result;
    }

    // A webhook key's slot is "webhook:<pipeline>/<hook>": never a secret's name, which has neither ':' nor '/'.
    private static string WebhookSlot(string pipeline, string hook) => $"webhook:{pipeline}/{hook}";

    private static SecretInfo Info(string name, SecretRecord record) =>
        new() { Name = name, UpdatedAt = record.UpdatedAt, Version = record.Version, KeyId = record.KeyId ?? SecretProtector.DefaultKeyId };
}
