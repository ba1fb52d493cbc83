using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Conveyor.Api.Hosting;

/// <summary>
/// A server process (nats-server, redis-server) started and owned by Conveyor on loopback. A pid file under the data
/// directory lets the next start end an orphan left by a crash of ours — and only one whose command line names our
/// data directory.
/// </summary>
internal sealed partial class LocalServerProcess : IAsyncDisposable
{
    private readonly string _name;
    private readonly string _executable;
    private readonly IReadOnlyList<string> _arguments;
    private readonly string _pidFile;
    private readonly string _ownershipMarker;
    private readonly List<string> _output = [];
    private Process? _process;

    /// <summary>Describes a server to start.</summary>
    /// <param name="name">Short name for messages (<c>nats-server</c>).</param>
    /// <param name="executable">Executable name or path.</param>
    /// <param name="arguments">Command-line arguments.</param>
    /// <param name="port">Loopback port the server listens on; readiness is a successful TCP connect.</param>
    /// <param name="pidFile">Where to record the pid.</param>
    /// <param name="ownershipMarker">A string (the data directory) that appears in the command line of our own instances.</param>
    public LocalServerProcess(string name, string executable, IReadOnlyList<string> arguments, int port, string pidFile, string ownershipMarker)
    {
        _name = name;
        _executable = executable;
        _arguments = arguments;
        Port = port;
        _pidFile = pidFile;
        _ownershipMarker = ownershipMarker;
    }

    /// <summary>The loopback port.</summary>
    public int Port { get; }

    /// <summary>The running process id, if started.</summary>
    public int? ProcessId => _process is { HasExited: false } p ? p.Id : null;

    /// <summary>A free TCP port on 127.0.0.1.</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Finds an executable on PATH (and in /usr/sbin, where Debian puts nats-server), or null.</summary>
    public static string? Locate(string executable)
    {
        ArgumentException.ThrowIfNullOrEmpty(executable);
        if (Path.IsPathRooted(executable))
        {
            return File.Exists(executable) ? executable : null;
        }

        var dirs = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Concat(["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"]);
        return dirs.Select(d => Path.Combine(d, executable)).FirstOrDefault(File.Exists);
    }

    /// <summary>Starts the server and waits until its port accepts connections.</summary>
    public async Task StartAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var path = Locate(_executable) ?? throw new InvalidOperationException(
            $"{_name} not found (looked for '{_executable}' on PATH and in /usr/sbin). Install it: sudo apt-get install -y {_name}, " +
            $"or configure an external server.");
        await EndOrphanAsync().ConfigureAwait(false);

        // In a session of its own (setsid execs in place, so the pid stays the server's): Ctrl-C in the terminal then
        // reaches only the silo, which stops the servers itself after Orleans has shut down.
        var detach = File.Exists(SetSid);
        var info = new ProcessStartInfo(detach ? SetSid : path)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (detach)
        {
            info.ArgumentList.Add(path);
        }

        foreach (var arg in _arguments)
        {
            info.ArgumentList.Add(arg);
        }

        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, e) => Remember(e.Data);
        process.ErrorDataReceived += (_, e) => Remember(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;
        Directory.CreateDirectory(Path.GetDirectoryName(_pidFile)!);
        await File.WriteAllTextAsync(_pidFile, process.Id.ToString(CultureInfo.InvariantCulture), cancellationToken).ConfigureAwait(false);

        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"{_name} exited with code {process.ExitCode} while starting on port {Port}:{Environment.NewLine}{RecentOutput()}");
            }

            if (await CanConnectAsync(Port, cancellationToken).ConfigureAwait(false))
            {
                return;
            }

            if (DateTime.UtcNow > deadline)
            {
                await StopAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
                throw new TimeoutException($"{_name} did not accept connections on 127.0.0.1:{Port} within {timeout}:{Environment.NewLine}{RecentOutput()}");
            }

            await Task.Delay(50, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Asks the server to stop (SIGTERM, so Redis flushes its append-only file), then kills it after <paramref name="grace"/>.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        var process = _process;
        if (process is null)
        {
            return;
        }

        try
        {
            if (!process.HasExited)
            {
                _ = SysKill(process.Id, SigTerm);
                using var cts = new CancellationTokenSource(grace);
                try
                {
                    await process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    process.Kill(entireProcessTree: true);
                    await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
                }
            }
        }
        finally
        {
            process.Dispose();
            _process = null;
            TryDelete(_pidFile);
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync() => await StopAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);

    /// <summary>The last lines the server printed.</summary>
    public string RecentOutput()
    {
        lock (_output)
        {
            return string.Join(Environment.NewLine, _output);
        }
    }

    private void Remember(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.Add(line);
            if (_output.Count > 50)
            {
                _output.RemoveAt(0);
            }
        }
    }

    private async Task EndOrphanAsync()
    {
        if (!File.Exists(_pidFile) || !int.TryParse(await File.ReadAllTextAsync(_pidFile).ConfigureAwait(false), out var pid))
        {
            return;
        }

        var cmdline = $"/proc/{pid}/cmdline";
        if (File.Exists(cmdline) && (await File.ReadAllTextAsync(cmdline).ConfigureAwait(false)).Contains(_ownershipMarker, StringComparison.Ordinal))
        {
            try
            {
                using var orphan = Process.GetProcessById(pid);
                _ = SysKill(pid, SigTerm);
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                try
                {
                    await orphan.WaitForExitAsync(cts.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    orphan.Kill();
                }
            }
            catch (ArgumentException)
            {
                // It exited meanwhile.
            }
        }

        TryDelete(_pidFile);
    }

    private static async Task<bool> CanConnectAsync(int port, CancellationToken cancellationToken)
    {
        try
        {
            using var client = new TcpClient();
            await client.ConnectAsync(IPAddress.Loopback, port, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private const int SigTerm = 15;
    private const string SetSid = "/usr/bin/setsid";

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int SysKill(int pid, int signal);
}
