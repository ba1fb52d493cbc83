using Xunit;

namespace Conveyor.Testing;

/// <summary>
/// One nats-server for an xunit collection or class (<c>ICollectionFixture&lt;NatsFixture&gt;</c> or
/// <c>IClassFixture&lt;NatsFixture&gt;</c>). Derive to add setup, such as streams, in <see cref="OnStartedAsync"/>.
/// </summary>
public class NatsFixture : IAsyncLifetime
{
    private NatsServerProcess? _server;

    /// <summary>The running server.</summary>
    public NatsServerProcess Server => _server ?? throw new InvalidOperationException("The fixture has not been initialized.");

    /// <summary>Client URL of the server.</summary>
    public string Url => Server.Url;

    /// <inheritdoc />
    public async Task InitializeAsync()
    {
        _server = await NatsServerProcess.StartNewAsync().ConfigureAwait(false);
        await OnStartedAsync().ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task DisposeAsync()
    {
        await OnStoppingAsync().ConfigureAwait(false);
        if (_server is { } server)
        {
            _server = null;
            await server.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Runs once the server accepts connections.</summary>
    protected virtual Task OnStartedAsync() => Task.CompletedTask;

    /// <summary>Runs before the server is killed.</summary>
    protected virtual Task OnStoppingAsync() => Task.CompletedTask;
}

/// <summary>One redis-server for an xunit collection or class.</summary>
public class RedisFixture : IAsyncLifetime
{
    private RedisServerProcess? _server;

    /// <summary>The running server.</summary>
    public RedisServerProcess Server => _server ?? throw new InvalidOperationException("The fixture has not been initialized.");

    /// <summary>Connection string of the server.</summary>
    public string ConnectionString => Server.ConnectionString;

    /// <inheritdoc />
    public async Task InitializeAsync() => _server = await RedisServerProcess.StartNewAsync().ConfigureAwait(false);

    /// <inheritdoc />
    public async Task DisposeAsync()
    {
        if (_server is { } server)
        {
            _server = null;
            await server.DisposeAsync().ConfigureAwait(false);
        }
    }
}
