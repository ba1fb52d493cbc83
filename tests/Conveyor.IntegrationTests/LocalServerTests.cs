using System.Diagnostics;
using System.Globalization;
using Conveyor.Api.Hosting;
using Conveyor.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace Conveyor.IntegrationTests;

/// <summary>
/// The single node's supervised servers: an orphan left by a crashed silo is found although redis-server rewrote its
/// process title, and a server that dies while the silo runs is started again.
/// </summary>
public sealed class LocalServerTests
{
    [Fact]
    public async Task An_orphaned_redis_server_is_ended_although_its_title_no_longer_names_the_data_directory()
    {
        var dir = Directory.CreateTempSubdirectory("conveyor-orphan-").FullName;
        var pidFile = Path.Combine(dir, "run", "redis-server.pid");
        var orphan = Redis(dir, pidFile);
        try
        {
            await orphan.StartAsync(TimeSpan.FromSeconds(20));
            var orphanPid = orphan.ProcessId!.Value;
            // What made the old check miss it: the title is "redis-server 127.0.0.1:<port>", without its arguments.
            await Eventually.TrueAsync(
                () => !File.ReadAllText($"/proc/{orphanPid}/cmdline").Contains(dir, StringComparison.Ordinal),
                TimeSpan.FromSeconds(10),
                "redis-server rewrites its process title");

            // The silo crashed (nothing stopped the server); the next start on the same data directory ends it.
            await using var next = Redis(dir, pidFile);
            await next.StartAsync(TimeSpan.FromSeconds(20));
            Assert.True(HasExited(orphanPid), "the orphan from the crashed silo was ended");
            Assert.NotEqual(orphanPid, next.ProcessId);
        }
        finally
        {
            await orphan.DisposeAsync();
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task An_orphan_is_found_by_its_working_directory_even_without_a_pid_file()
    {
        var dir = Directory.CreateTempSubdirectory("conveyor-orphan-").FullName;
        var pidFile = Path.Combine(dir, "run", "redis-server.pid");
        var orphan = Redis(dir, pidFile);
        var other = Directory.CreateTempSubdirectory("conveyor-orphan-other-").FullName;
        var stranger = Redis(other, Path.Combine(other, "run", "redis-server.pid"));
        try
        {
            await orphan.StartAsync(TimeSpan.FromSeconds(20));
            await stranger.StartAsync(TimeSpan.FromSeconds(20));
            var orphanPid = orphan.ProcessId!.Value;
            var strangerPid = stranger.ProcessId!.Value;
            File.Delete(pidFile);
            Assert.Equal([orphanPid], LocalServerProcess.FindInstances("redis-server", dir));

            await using var next = Redis(dir, pidFile);
            await next.StartAsync(TimeSpan.FromSeconds(20));
            Assert.True(HasExited(orphanPid), "the orphan was found by executable and working directory");
            Assert.False(HasExited(strangerPid), "a server on another data directory is left alone");
        }
        finally
        {
            await orphan.DisposeAsync();
            await stranger.DisposeAsync();
            Directory.Delete(dir, recursive: true);
            Directory.Delete(other, recursive: true);
        }
    }

    [Fact]
    public async Task A_supervised_server_killed_while_the_silo_runs_is_started_again_on_its_port()
    {
        var dir = Directory.CreateTempSubdirectory("conveyor-supervisor-").FullName;
        var port = ServerProcess.FindFreePort();
        var supervisor = new LocalServerSupervisor(
            new LocalServerPlan { DataDirectory = dir, RedisPort = port, NatsServerPath = "nats-server", RedisServerPath = "redis-server" },
            NullLogger<LocalServerSupervisor>.Instance);
        try
        {
            await supervisor.StartAsync(CancellationToken.None);
            var first = ReadPid(dir);
            Assert.Contains("appendfsync always", await RedisConfigAsync(port, "appendfsync"), StringComparison.Ordinal);

            Process.GetProcessById(first).Kill();
            await Eventually.TrueAsync(() => supervisor.Problems.Count > 0 || (TryReadPid(dir) is { } p && p != first), TimeSpan.FromSeconds(10), "the death is noticed");
            await Eventually.TrueAsync(
                async () => TryReadPid(dir) is { } pid && pid != first && supervisor.Problems.Count == 0 && (await RedisConfigAsync(port, "appendfsync")).Length > 0,
                TimeSpan.FromSeconds(30),
                "redis-server runs again on the same port");
        }
        finally
        {
            await supervisor.StopAsync(CancellationToken.None);
            Directory.Delete(dir, recursive: true);
        }
    }

    private static LocalServerProcess Redis(string dir, string pidFile)
    {
        var port = ServerProcess.FindFreePort();
        return new LocalServerProcess(
            "redis-server",
            "redis-server",
            ["--port", port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no", "--daemonize", "no"],
            port,
            pidFile,
            dir);
    }

    private static int ReadPid(string dir) => TryReadPid(dir) ?? throw new InvalidOperationException("no pid file");

    private static int? TryReadPid(string dir)
    {
        try
        {
            return int.Parse(File.ReadAllText(Path.Combine(dir, "run", "redis-server.pid")), CultureInfo.InvariantCulture);
        }
        catch (Exception ex) when (ex is IOException or FormatException)
        {
            return null;
        }
    }

    private static async Task<string> RedisConfigAsync(int port, string name)
    {
        try
        {
            await using var redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync($"127.0.0.1:{port},allowAdmin=true,connectTimeout=1000");
            var values = await redis.GetServer("127.0.0.1", port).ConfigGetAsync(name);
            return string.Join(" ", values.Select(v => $"{v.Key} {v.Value}"));
        }
        catch (StackExchange.Redis.RedisConnectionException)
        {
            return "";
        }
    }

    private static bool HasExited(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return process.HasExited;
        }
        catch (ArgumentException)
        {
            return true;
        }
    }
}
