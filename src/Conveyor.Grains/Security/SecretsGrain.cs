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
}

/// <summary>Stored state of a namespace's secrets.</summary>
[GenerateSerializer]
[Alias("conveyor.SecretsState")]
internal sealed class SecretsState
{
    /// <summary>Secrets by name.</summary>
    [Id(0)] public Dictionary<string, SecretRecord> Secrets { get; set; } = [];
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
        var updated = new SecretRecord
        {
            Ciphertext = protector.Encrypt(Namespace, name, value),
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
            values[name] = protector.Decrypt(Namespace, name, record.Ciphertext);
        }

        return Task.FromResult(values);
    }

    private static SecretInfo Info(string name, SecretRecord record) => new() { Name = name, UpdatedAt = record.UpdatedAt, Version = record.Version };
}
