using System.Globalization;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Conveyor.Api.Hosting;

/// <summary>What a single node supervises: which local servers, on which ports, with data where.</summary>
internal sealed class LocalServerPlan
{
    /// <summary>Absolute data directory.</summary>
    public required string DataDirectory { get; init; }

    /// <summary>Port of the local NATS server, or null when NATS is external.</summary>
    public int? NatsPort { get; init; }

    /// <summary>Port of the local Redis server, or null when Redis is external.</summary>
    public int? RedisPort { get; init; }

    /// <summary>nats-server executable.</summary>
    public required string NatsServerPath { get; init; }

    /// <summary>redis-server executable.</summary>
    public required string RedisServerPath { get; init; }
}

/// <summary>
/// Starts the local nats-server (JetStream, store under the data directory) and redis-server (append-only file
/// under the data directory) before the silo, and stops them after it. Registered ahead of Orleans, so the host
/// starts it first and stops it last.
/// </summary>
internal sealed partial class LocalServerSupervisor(LocalServerPlan plan, ILogger<LocalServerSupervisor> logger) : IHostedService, IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);
    private readonly List<LocalServerProcess> _servers = [];

    /// <inheritdoc />
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(plan.DataDirectory);
        var run = Path.Combine(plan.DataDirectory, "run");
        if (plan.NatsPort is { } natsPort)
        {
            var store = Path.Combine(plan.DataDirectory, "nats");
            Directory.CreateDirectory(store);
            var nats = new LocalServerProcess(
                "nats-server",
                plan.NatsServerPath,
                ["-js", "-a", "127.0.0.1", "-p", natsPort.ToString(CultureInfo.InvariantCulture), "-sd", store, "-n", "conveyor"],
                natsPort,
                Path.Combine(run, "nats-server.pid"),
                store);
            await StartOneAsync(nats, cancellationToken).ConfigureAwait(false);
            LogStarted(logger, "nats-server", natsPort, store);
        }

        if (plan.RedisPort is { } redisPort)
        {
            var dir = Path.Combine(plan.DataDirectory, "redis");
            Directory.CreateDirectory(dir);
            var redis = new LocalServerProcess(
                "redis-server",
                plan.RedisServerPath,
                [
                    "--port", redisPort.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--dir", dir,
                    "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no", "--protected-mode", "yes",
                ],
                redisPort,
                Path.Combine(run, "redis-server.pid"),
                dir);
            await StartOneAsync(redis, cancellationToken).ConfigureAwait(false);
            LogStarted(logger, "redis-server", redisPort, dir);
        }
    }

    /// <inheritdoc />
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_servers.Count == 0)
        {
            return;
        }

        // Reverse start order: Redis first (the silo is already down), then NATS.
        for (var i = _servers.Count - 1; i >= 0; i--)
        {
            await _servers[i].StopAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        }

        _servers.Clear();
        LogStopped(logger);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync() => await StopAsync(CancellationToken.None).ConfigureAwait(false);

    private async Task StartOneAsync(LocalServerProcess server, CancellationToken cancellationToken)
    {
        _servers.Add(server);
        await server.StartAsync(StartTimeout, cancellationToken).ConfigureAwait(false);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Started {Server} on 127.0.0.1:{Port} (data in {DataDirectory})")]
    private static partial void LogStarted(ILogger logger, string server, int port, string dataDirectory);

    [LoggerMessage(Level = LogLevel.Information, Message = "Stopped the local servers")]
    private static partial void LogStopped(ILogger logger);
}
