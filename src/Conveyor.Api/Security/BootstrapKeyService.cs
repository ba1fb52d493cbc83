using Conveyor.Grains.Security;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Conveyor.Api.Security;

/// <summary>
/// Makes sure an admin key exists once the silo is up: the configured <see cref="ConveyorAuthOptions.BootstrapKey"/>,
/// or — the first time the cluster ever starts with authentication on — a generated one, logged once. The registry
/// remembers that it generated one, so a restart never prints another.
/// </summary>
internal sealed partial class BootstrapKeyService(IGrainFactory grains, ConveyorAuthSettings settings, TimeProvider time, ILogger<BootstrapKeyService> logger)
    : IHostedService
{
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
            if (!ApiKeys.TryParse(configured, out var id, out var secret))
            {
                throw new InvalidOperationException("Invalid Conveyor configuration: Conveyor:Auth:BootstrapKey must look like cvk_<id>_<secret> (lowercase letters and digits in the id).");
            }

            var grain = grains.GetGrain<IApiKeyGrain>(id);
            var existing = await grain.GetAsync().ConfigureAwait(false);
            if (existing is null)
            {
                await grain.CreateAsync(NewAdminKey(id, secret)).ConfigureAwait(false);
                await registry.AddAsync(id).ConfigureAwait(false);
                LogConfiguredKeyCreated(logger, id);
            }
            else if (!ApiKeys.Matches(secret, existing.SecretHash))
            {
                throw new InvalidOperationException($"Invalid Conveyor configuration: Conveyor:Auth:BootstrapKey names key id {id}, which exists with another secret.");
            }

            return;
        }

        if (await registry.ClaimBootstrapAsync().ConfigureAwait(false))
        {
            var (id, key) = ApiKeys.Generate();
            var secret = key[(ApiKeys.Prefix.Length + id.Length + 1)..];
            await grains.GetGrain<IApiKeyGrain>(id).CreateAsync(NewAdminKey(id, secret)).ConfigureAwait(false);
            await registry.AddAsync(id).ConfigureAwait(false);
            LogGeneratedKey(logger, key);
        }
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

    // The one place a key is ever written to a log: the generated bootstrap key, exactly once in the cluster's life.
    [LoggerMessage(Level = LogLevel.Warning, Message = "Generated the bootstrap admin API key (shown once, store it now): {ApiKey}")]
    private static partial void LogGeneratedKey(ILogger logger, string apiKey);

    [LoggerMessage(Level = LogLevel.Information, Message = "Created the configured bootstrap admin API key {KeyId}")]
    private static partial void LogConfiguredKeyCreated(ILogger logger, string keyId);
}
