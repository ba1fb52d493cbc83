using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Conveyor.Api.Hosting;

/// <summary>
/// A server process (nats-server, redis-server) started and owned by Conveyor on loopback, run in its data directory.
/// The next start ends an orphan left by a crash of ours: the process named by the pid file, or any other, whose
/// executable is this server's and whose working directory is this data directory. Neither can be changed by a
/// process rewriting its title (redis-server shows <c>redis-server 127.0.0.1:port</c>, without its arguments), and
/// together they never match a stranger that merely reuses a pid.
/// </summary>
internal sealed partial class LocalServerProcess : IAsyncDisposable
{
    private readonly string _name;
    private readonly string _executable;
    private readonly IReadOnlyList<string> _arguments;
    private readonly string _pidFile;
    private readonly string _workingDirectory;
    private readonly List<string> _output = [];
    private Process? _process;

    /// <summary>Describes a server to start.</summary>
    /// <param name="name">Short name for messages (<c>nats-server</c>).</param>
    /// <param name="executable">Executable name or path.</param>
    /// <param name="arguments">Command-line arguments.</param>
    /// <param name="port">Loopback port the server listens on; readiness is a successful TCP connect.</param>
    /// <param name="pidFile">Where to record the pid.</param>
    /// <param name="workingDirectory">The server's data directory, which it runs in: with the executable, what identifies our own instances.</param>
    public LocalServerProcess(string name, string executable, IReadOnlyList<string> arguments, int port, string pidFile, string workingDirectory)
    {
        _name = name;
        _executable = executable;
        _arguments = arguments;
        Port = port;
        _pidFile = pidFile;
        _workingDirectory = Path.GetFullPath(workingDirectory);
    }

    /// <summary>Short name for messages (<c>nats-server</c>).</summary>
    public string Name => _name;

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
        await EndOrphansAsync(path).ConfigureAwait(false);

        // In a session of its own (setsid execs in place, so the pid stays the server's): Ctrl-C in the terminal then
        // reaches only the silo, which stops the servers itself after Orleans has shut down.
        var detach = File.Exists(SetSid);
        var info = new ProcessStartInfo(detach ? SetSid : path)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = _workingDirectory,
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

    /// <summary>Waits until the running server exits; returns its exit code (null when none runs).</summary>
    public async Task<int?> WaitForExitAsync(CancellationToken cancellationToken)
    {
        if (_process is not { } process)
        {
            return null;
        }

        await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        return process.ExitCode;
    }

    /// <summary>Ids of running processes that are instances of <paramref name="executable"/> in <paramref name="workingDirectory"/>.</summary>
    public static IReadOnlyList<int> FindInstances(string executable, string workingDirectory)
    {
        ArgumentException.ThrowIfNullOrEmpty(executable);
        var binary = FinalTarget(executable);
        var directory = RealPath(workingDirectory);
        var found = new List<int>();
        if (!Directory.Exists("/proc"))
        {
            return found;
        }

        foreach (var entry in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(entry), NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
                && pid != Environment.ProcessId
                && IsInstance(pid, binary, directory))
            {
                found.Add(pid);
            }
        }

        return found;
    }

    /// <summary>
    /// Ends what a crashed silo of ours left running on this data directory: the pid file's process if it is still
    /// this server in this directory, then any other such process (a lost pid file, an older layout).
    /// </summary>
    private async Task EndOrphansAsync(string path)
    {
        var binary = FinalTarget(path);
        var directory = RealPath(_workingDirectory);
        var orphans = new HashSet<int>();
        if (File.Exists(_pidFile) && int.TryParse(await File.ReadAllTextAsync(_pidFile).ConfigureAwait(false), out var recorded)
            && IsInstance(recorded, binary, directory))
        {
            orphans.Add(recorded);
        }

        foreach (var pid in FindInstances(path, _workingDirectory))
        {
            orphans.Add(pid);
        }

        foreach (var pid in orphans)
        {
            await EndAsync(pid).ConfigureAwait(false);
        }

        TryDelete(_pidFile);
    }

    private static async Task EndAsync(int pid)
    {
        try
        {
            using var orphan = Process.GetProcessById(pid);
            // SIGTERM first: Redis then flushes its append-only file, nats-server its store.
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
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException)
        {
            // It exited meanwhile.
        }
    }

    private static bool IsInstance(int pid, string binary, string directory)
    {
        try
        {
            var exe = new FileInfo($"/proc/{pid}/exe").LinkTarget;
            var cwd = new DirectoryInfo($"/proc/{pid}/cwd").LinkTarget;
            return exe is not null && cwd is not null
                && string.Equals(exe, binary, StringComparison.Ordinal)
                && string.Equals(Path.TrimEndingDirectorySeparator(cwd), directory, StringComparison.Ordinal);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Gone, or not ours to look at.
            return false;
        }
    }

    /// <summary>The file an executable path finally names (Debian's redis-server is a link to redis-check-rdb).</summary>
    private static string FinalTarget(string executable) => RealPath(Locate(executable) ?? executable);

    /// <summary>The canonical path, every link resolved (what /proc shows); the full path when it cannot be resolved.</summary>
    private static string RealPath(string path)
    {
        var full = Path.GetFullPath(path);
        var resolved = SysRealPath(full, IntPtr.Zero);
        if (resolved == IntPtr.Zero)
        {
            return Path.TrimEndingDirectorySeparator(full);
        }

        try
        {
            return Marshal.PtrToStringUTF8(resolved) ?? full;
        }
        finally
        {
            SysFree(resolved);
        }
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

    [LibraryImport("libc", EntryPoint = "realpath", StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr SysRealPath(string path, IntPtr resolved);

    [LibraryImport("libc", EntryPoint = "free")]
    private static partial void SysFree(IntPtr pointer);
}
