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
/// under the data directory, fsync on every write) before the silo, restarts either one when it dies while the silo
/// runs (backing off from 200 ms to 10 s), and stops them after the silo. Registered ahead of Orleans, so the host
/// starts it first and stops it last.
/// </summary>
internal sealed partial class LocalServerSupervisor(LocalServerPlan plan, ILogger<LocalServerSupervisor> logger) : IHostedService, IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan FirstRestartDelay = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan MaxRestartDelay = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan StableRun = TimeSpan.FromSeconds(30);
    private readonly List<LocalServerProcess> _servers = [];
    private readonly List<Task> _watchers = [];
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> _down = new(StringComparer.Ordinal);
    private CancellationTokenSource _stopping = new();

    /// <summary>Supervised servers that are down right now (they are being restarted), one entry each.</summary>
    public IReadOnlyList<string> Problems => [.. _down.Values];

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
                // nats-server 2.9 has no fsync setting: its file store writes every message to the OS before it acks
                // and syncs to disk every minute (see docs/operations/cluster.md); 2.10+ is told to sync every write.
                [.. NatsSync(plan.NatsServerPath, run), "-js", "-a", "127.0.0.1", "-p", natsPort.ToString(CultureInfo.InvariantCulture), "-sd", store, "-n", "conveyor"],
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
                    // Every write reaches the disk before Redis answers it: a crash of the machine loses nothing acknowledged.
                    "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no", "--protected-mode", "yes",
                    "--maxmemory-policy", "noeviction",
                ],
                redisPort,
                Path.Combine(run, "redis-server.pid"),
                dir);
            await StartOneAsync(redis, cancellationToken).ConfigureAwait(false);
            LogStarted(logger, "redis-server", redisPort, dir);
        }

        foreach (var server in _servers)
        {
            _watchers.Add(Task.Run(() => WatchAsync(server, _stopping.Token), CancellationToken.None));
        }
    }

    /// <inheritdoc />
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_servers.Count == 0)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(_watchers).ConfigureAwait(false);
        _watchers.Clear();

        // Reverse start order: Redis first (the silo is already down), then NATS.
        for (var i = _servers.Count - 1; i >= 0; i--)
        {
            await _servers[i].StopAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        }

        _servers.Clear();
        _stopping.Dispose();
        _stopping = new CancellationTokenSource();
        LogStopped(logger);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync() => await StopAsync(CancellationToken.None).ConfigureAwait(false);

    private async Task StartOneAsync(LocalServerProcess server, CancellationToken cancellationToken)
    {
        _servers.Add(server);
        await server.StartAsync(StartTimeout, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Restarts <paramref name="server"/> whenever it exits until the supervisor stops.</summary>
    private async Task WatchAsync(LocalServerProcess server, CancellationToken stopping)
    {
        var delay = FirstRestartDelay;
        var startedAt = DateTime.UtcNow;
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                var code = await server.WaitForExitAsync(stopping).ConfigureAwait(false);
                if (DateTime.UtcNow - startedAt > StableRun)
                {
                    delay = FirstRestartDelay;
                }

                _down[server.Name] = $"the supervised {server.Name} exited (code {code?.ToString(CultureInfo.InvariantCulture) ?? "?"}) and is being restarted";
                LogExited(logger, server.Name, code ?? -1, delay);
                await Task.Delay(delay, stopping).ConfigureAwait(false);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, MaxRestartDelay.Ticks));
                await server.StartAsync(StartTimeout, stopping).ConfigureAwait(false);
                startedAt = DateTime.UtcNow;
                _down.TryRemove(server.Name, out _);
                LogRestarted(logger, server.Name, server.Port);
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is InvalidOperationException or TimeoutException or IOException or System.ComponentModel.Win32Exception)
            {
                LogRestartFailed(logger, ex, server.Name);
            }
        }
    }

    /// <summary>
    /// Arguments that make nats-server sync every write to disk, where it supports it (2.10 and later read
    /// <c>sync_interval: always</c> from a configuration file); none for older servers.
    /// </summary>
    private static string[] NatsSync(string executable, string runDirectory)
    {
        var version = NatsVersion(executable);
        if (version is null || version < new Version(2, 10))
        {
            return [];
        }

        Directory.CreateDirectory(runDirectory);
        var config = Path.Combine(runDirectory, "nats-server.conf");
        File.WriteAllText(config, "jetstream {\n  sync_interval: always\n}\n");
        return ["-c", config];
    }

    private static Version? NatsVersion(string executable)
    {
        var path = LocalServerProcess.Locate(executable);
        if (path is null)
        {
            return null;
        }

        try
        {
            using var process = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo(path, "--version")
            {
                RedirectStandardOutput = true,
                UseShellExecute = false,
            });
            var output = process?.StandardOutput.ReadToEnd() ?? "";
            process?.WaitForExit(5000);
            // "nats-server: v2.9.10"
            var at = output.IndexOf(": v", StringComparison.Ordinal);
            return at >= 0 && Version.TryParse(output[(at + 3)..].Trim().Split('-')[0], out var version) ? version : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Started {Server} on 127.0.0.1:{Port} (data in {DataDirectory})")]
    private static partial void LogStarted(ILogger logger, string server, int port, string dataDirectory);

    [LoggerMessage(Level = LogLevel.Information, Message = "Stopped the local servers")]
    private static partial void LogStopped(ILogger logger);

    [LoggerMessage(Level = LogLevel.Error, Message = "The supervised {Server} exited with code {ExitCode}; restarting it in {Delay}")]
    private static partial void LogExited(ILogger logger, string server, int exitCode, TimeSpan delay);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Restarted the supervised {Server} on 127.0.0.1:{Port}")]
    private static partial void LogRestarted(ILogger logger, string server, int port);

    [LoggerMessage(Level = LogLevel.Error, Message = "Restarting the supervised {Server} failed; trying again")]
    private static partial void LogRestartFailed(ILogger logger, Exception exception, string server);
}
