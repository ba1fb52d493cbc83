using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Conveyor.Bench;

/// <summary>
/// A redis-server for one peer in one pass: the tool starts it on a free loopback port with an append-only file in a
/// temporary directory (<c>--appendonly yes --appendfsync</c> as asked), stops it by its PID and deletes the directory.
/// </summary>
internal sealed class PeerRedis : IAsyncDisposable
{
    private readonly ChildProcess _process;
    private readonly string _dir;

    private PeerRedis(ChildProcess process, string dir, int port)
    {
        _process = process;
        _dir = dir;
        Port = port;
    }

    public int Port { get; }

    /// <summary>The server's CPU time so far.</summary>
    public TimeSpan Cpu => _process.Cpu;

    /// <summary>StackExchange.Redis connection string.</summary>
    public string Endpoint => string.Create(CultureInfo.InvariantCulture, $"127.0.0.1:{Port}");

    public static async Task<PeerRedis> StartAsync(string name, string fsync)
    {
        var dir = Directory.CreateTempSubdirectory($"conveyor-bench-{name}-redis-").FullName;
        var port = FreePort();
        var process = ChildProcess.StartProgram(
            $"{name}-redis",
            "redis-server",
            [
                "--port", port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--dir", dir, "--save", "",
                "--appendonly", "yes", "--appendfsync", fsync, "--daemonize", "no",
            ],
            readyLine: "Ready to accept connections",
            workingDirectory: dir,
            readyIfContains: true);
        var redis = new PeerRedis(process, dir, port);
        try
        {
            await process.WaitReadyAsync(TimeSpan.FromSeconds(30));
            return redis;
        }
        catch
        {
            await redis.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _process.DisposeAsync();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
