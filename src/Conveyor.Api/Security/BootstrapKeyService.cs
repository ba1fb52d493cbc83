using Conveyor.Grains.Security;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Conveyor.Api.Security;

/// <summary>
/// Makes sure an admin key exists once the silo is up: the configured <see cref="ConveyorAuthOptions.BootstrapKey"/>
/// (at least 128 bits; a change of it revokes the bootstrap key it replaces), or — the first time the cluster ever
/// starts with authentication on — a generated one, written to <see cref="ConveyorAuthSettings.BootstrapKeyFile"/>
/// (mode 0600), never to the log.
/// </summary>
/// <remarks>
/// Generating is crash-safe: the registry hands out a short lease (<see cref="IApiKeyRegistryGrain.BeginBootstrapAsync"/>),
/// then the key is created, written to its file, and only then is the bootstrap marked complete. A silo that dies
/// anywhere before the mark leaves a lease that runs out; the next start takes over, revokes the abandoned key (its
/// file may or may not have been written) and writes a new one — so the cluster is never left without an admin key,
/// and the key in the file is the one that works. After the mark no start writes a key again. Both paths are idempotent.
/// </remarks>
internal sealed partial class BootstrapKeyService(IGrainFactory grains, ConveyorAuthSettings settings, TimeProvider time, ILogger<BootstrapKeyService> logger)
    : IHostedService
{
    /// <summary>How long one attempt may take from its lease to its completion: milliseconds in practice.</summary>
    internal static readonly TimeSpan Lease = TimeSpan.FromSeconds(15);

    private static readonly TimeSpan BusyPoll = TimeSpan.FromMilliseconds(250);

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (!settings.Enabled)
        {
            return;
        }

        var registry = grains.GetGrain<IApiKeyRegistryGrain>(IApiKeyRegistryGrain.Id);
        var configured = settings.Options.BootstrapKey;
        if (!string.IsNullOrEmpty(configured))
        {
            await EnsureConfiguredKeyAsync(registry, configured).ConfigureAwait(false);
            return;
        }

        while (true)
        {
            var (id, key) = ApiKeys.Generate();
            var begin = await registry.BeginBootstrapAsync(id, time.GetUtcNow() + Lease).ConfigureAwait(false);
            switch (begin.Step)
            {
                case BootstrapStep.Done:
                    return;
                case BootstrapStep.Busy:
                    // Another silo holds the lease: it finishes in milliseconds, or its lease runs out.
                    await Task.Delay(BusyPoll, time, cancellationToken).ConfigureAwait(false);
                    continue;
            }

            if (begin.Abandoned is { } abandoned)
            {
                await grains.GetGrain<IApiKeyGrain>(abandoned).RevokeAsync().ConfigureAwait(false);
                LogAbandonedKeyRevoked(logger, abandoned);
            }

            var secret = key[(ApiKeys.Prefix.Length + id.Length + 1)..];
            await grains.GetGrain<IApiKeyGrain>(id).CreateAsync(NewAdminKey(id, secret)).ConfigureAwait(false);
            await registry.AddAsync(id).ConfigureAwait(false);
            WriteKeyFile(settings.BootstrapKeyFile, key);
            LogGeneratedKey(logger, id, settings.BootstrapKeyFile);
            if (await registry.CompleteBootstrapAsync(id).ConfigureAwait(false))
            {
                return;
            }

            // Our lease ran out and another start took over (and revoked this key): it prints the key that counts.
            LogBootstrapTakenOver(logger, id);
            return;
        }
    }

    /// <summary>Creates the configured key if absent; idempotent, also when two silos start at once or a start died half-way.</summary>
    private async Task EnsureConfiguredKeyAsync(IApiKeyRegistryGrain registry, string configured)
    {
        if (!ApiKeys.TryParse(configured, out var id, out var secret))
        {
            throw new InvalidOperationException(
                $"Invalid Conveyor configuration: Conveyor:Auth:BootstrapKey must look like cvk_<id>_<secret>: lowercase letters and digits in the id, and a secret of at least {ApiKeys.MinSecretLength} random base64url characters (128 bits or more).");
        }

        var grain = grains.GetGrain<IApiKeyGrain>(id);
        var existing = await grain.GetAsync().ConfigureAwait(false);
        if (existing is null)
        {
            try
            {
                existing = await grain.CreateAsync(NewAdminKey(id, secret)).ConfigureAwait(false);
                LogConfiguredKeyCreated(logger, id);
            }
            catch (Conveyor.Grains.Abstractions.ConveyorConflictException)
            {
                // Another silo created it a moment ago.
                existing = await grain.GetAsync().ConfigureAwait(false);
            }
        }

        if (existing is null || !ApiKeys.Matches(secret, existing.SecretHash))
        {
            throw new InvalidOperationException($"Invalid Conveyor configuration: Conveyor:Auth:BootstrapKey names key id {id}, which exists with another secret.");
        }

        // Always: a start that died between creating the key and listing it left it unlisted.
        await registry.AddAsync(id).ConfigureAwait(false);

        // The key it replaces (an earlier configured or generated one) must not outlive the change.
        foreach (var previous in await registry.SetConfiguredBootstrapAsync(id).ConfigureAwait(false))
        {
            if (await grains.GetGrain<IApiKeyGrain>(previous).GetAsync().ConfigureAwait(false) is { RevokedAt: null })
            {
                await grains.GetGrain<IApiKeyGrain>(previous).RevokeAsync().ConfigureAwait(false);
                LogPreviousKeyRevoked(logger, previous, id);
            }
        }
    }

    /// <summary>Writes the generated key where only this user can read it, replacing the file of an abandoned attempt.</summary>
    private static void WriteKeyFile(string path, string key)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            if (File.Exists(path))
            {
                // UnixCreateMode applies to new files only; an old file is narrowed before the key goes in.
                File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }
        }

        using var stream = new FileStream(path, options);
        stream.Write(System.Text.Encoding.ASCII.GetBytes(key + "\n"));
        stream.Flush(flushToDisk: true);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private ApiKeyData NewAdminKey(string id, string secret) => new()
    {
        Id = id,
        Name = "bootstrap",
        Role = ApiRole.Admin,
        Namespaces = ["*"],
        SecretHash = ApiKeys.Hash(secret),
        CreatedAt = time.GetUtcNow(),
        Bootstrap = true,
    };

    // No key is ever written to a log: logs are shipped, kept and read by many. The file is the one copy.
    [LoggerMessage(Level = LogLevel.Warning, Message = "Generated the bootstrap admin API key {KeyId} and wrote it to {Path} (mode 0600): store it somewhere safe, then delete the file")]
    private static partial void LogGeneratedKey(ILogger logger, string keyId, string path);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Revoked the bootstrap admin API key {KeyId}: the configured bootstrap key is now {NewKeyId}")]
    private static partial void LogPreviousKeyRevoked(ILogger logger, string keyId, string newKeyId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Revoked bootstrap admin API key {KeyId}: the start that generated it died before completing, so a new one is generated")]
    private static partial void LogAbandonedKeyRevoked(ILogger logger, string keyId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Bootstrap admin API key {KeyId} took longer than its lease; another start replaced it, use the key it prints")]
    private static partial void LogBootstrapTakenOver(ILogger logger, string keyId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Created the configured bootstrap admin API key {KeyId}")]
    private static partial void LogConfiguredKeyCreated(ILogger logger, string keyId);
}
