using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;

namespace Conveyor.Testing;

/// <summary>
/// A real server process (nats-server, redis-server) listening on a free loopback port with its data in a temp
/// directory. It can be stopped and restarted on the same port and directory, which fault tests need. Disposing kills
/// the process (by its PID) and deletes the directory.
/// </summary>
public abstract partial class ServerProcess : IAsyncDisposable
{
    private const int PortAttempts = 5;
    private static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(5);
    private const int MaxOutputLines = 200;
    private const int SigTerm = 15;
    private const int SigCont = 18;
    private const int SigStop = 19;

    private readonly Queue<string> _output = new();
    private readonly Lock _outputGate = new();
    private Process? _process;
    private bool _disposed;
    private bool _started;
    private volatile bool _ready;

    /// <summary>Creates the process description; call <see cref="StartAsync"/> to run it.</summary>
    /// <param name="binaryName">File name of the server binary, looked up on PATH, /usr/sbin and /usr/bin.</param>
    /// <param name="aptPackage">Debian package that provides it, for the "not found" message.</param>
    protected ServerProcess(string binaryName, string aptPackage)
    {
        BinaryPath = FindBinary(binaryName)
            ?? throw new InvalidOperationException($"{binaryName} not found: install it with 'apt-get install -y {aptPackage}'");
        Port = FindFreePort();
        StoreDir = Directory.CreateTempSubdirectory($"conveyor-{binaryName}-").FullName;
    }

    /// <summary>Full path of the server binary.</summary>
    public string BinaryPath { get; }

    /// <summary>TCP port on 127.0.0.1; stays the same across restarts.</summary>
    public int Port { get; private set; }

    /// <summary>Data directory; stays the same across restarts and is deleted on dispose.</summary>
    public string StoreDir { get; }

    /// <summary>PID of the running process, or <c>null</c> when stopped.</summary>
    public int? ProcessId => _process is { HasExited: false } p ? p.Id : null;

    /// <summary>The last lines the server wrote to stdout and stderr.</summary>
    public string RecentOutput
    {
        get
        {
            lock (_outputGate)
            {
                return string.Join('\n', _output);
            }
        }
    }

    /// <summary>Command-line arguments of the server.</summary>
    protected abstract IEnumerable<string> Arguments { get; }

    /// <summary>
    /// What the server writes once it listens. Waiting for it, not only for the port to answer, makes sure the
    /// listener is this process and not another that happens to hold the port.
    /// </summary>
    protected abstract string ReadyLine { get; }

    /// <summary>
    /// Starts the server and waits until it says it is ready and its port accepts TCP connections. On the first start,
    /// a port taken between choosing it and binding it (another process on a busy machine) is replaced by a new one.
    /// </summary>
    /// <exception cref="InvalidOperationException">The server exited or did not get ready within the startup deadline.</exception>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_process is { HasExited: false })
        {
            throw new InvalidOperationException($"{Path.GetFileName(BinaryPath)} is already running (pid {_process.Id}).");
        }

        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await StartOnceAsync(cancellationToken).ConfigureAwait(false);
                _started = true;
                return;
            }
            catch (PortTakenException) when (!_started && attempt < PortAttempts)
            {
                Port = FindFreePort();
            }
        }
    }

    private async Task StartOnceAsync(CancellationToken cancellationToken)
    {
        _ready = false;

        var startInfo = new ProcessStartInfo(BinaryPath)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = StoreDir,
        };
        foreach (var argument in Arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        var process = new Process { StartInfo = startInfo };
        process.OutputDataReceived += (_, e) => Remember(e.Data);
        process.ErrorDataReceived += (_, e) => Remember(e.Data);
        if (!process.Start())
        {
            throw new InvalidOperationException($"{BinaryPath} did not start.");
        }

        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;

        var deadline = Stopwatch.StartNew();
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (process.HasExited)
            {
                // Let the output readers catch the last lines before reporting them.
                await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
                _process = null;
                var message = $"{Path.GetFileName(BinaryPath)} exited with code {process.ExitCode} before listening on port {Port}:\n{RecentOutput}";
                process.Dispose();
                if (RecentOutput.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
                {
                    throw new PortTakenException(message);
                }

                throw new InvalidOperationException(message);
            }

            if (_ready && await AcceptsConnectionsAsync(cancellationToken).ConfigureAwait(false))
            {
                return;
            }

            if (deadline.Elapsed > Deadlines.Startup)
            {
                KillProcess(process);
                throw new InvalidOperationException(
                    $"{Path.GetFileName(BinaryPath)} did not get ready on port {Port} within {Deadlines.Startup.TotalSeconds:0} s:\n{RecentOutput}");
            }

            await Task.Delay(25, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Stops the server: SIGTERM, then SIGKILL if it has not exited after 5 seconds.</summary>
    public async Task StopAsync()
    {
        if (_process is not { } process)
        {
            return;
        }

        _process = null;
        using (process)
        {
            if (process.HasExited)
            {
                return;
            }

            _ = Kill(process.Id, SigTerm);
            using var grace = new CancellationTokenSource(StopGrace);
            try
            {
                await process.WaitForExitAsync(grace.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                KillProcess(process);
                await process.WaitForExitAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// kill -9: the server gets no chance to flush anything (what a crash of its machine's process looks like); the data
    /// directory stays for a restart.
    /// </summary>
    public async Task KillAsync()
    {
        if (_process is not { } process)
        {
            return;
        }

        _process = null;
        using (process)
        {
            KillProcess(process);
            await process.WaitForExitAsync().ConfigureAwait(false);
        }
    }

    /// <summary>SIGSTOP: the server stops answering without closing a connection, as a hung machine does.</summary>
    public void Suspend() => Signal(SigStop);

    /// <summary>SIGCONT after <see cref="Suspend"/>.</summary>
    public void Resume() => Signal(SigCont);

    /// <summary>Stops and starts the server again on the same port with the same data directory.</summary>
    public async Task RestartAsync(CancellationToken cancellationToken = default)
    {
        await StopAsync().ConfigureAwait(false);
        await StartAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Kills the process and deletes the data directory.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        if (_process is { } process)
        {
            _process = null;
            using (process)
            {
                KillProcess(process);
                await process.WaitForExitAsync().ConfigureAwait(false);
            }
        }

        try
        {
            Directory.Delete(StoreDir, recursive: true);
        }
        catch (IOException)
        {
            // A temp directory left behind is harmless.
        }
        catch (UnauthorizedAccessException)
        {
        }

        GC.SuppressFinalize(this);
    }

    /// <summary>Finds a TCP port on 127.0.0.1 that is free right now.</summary>
    public static int FindFreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            return ((IPEndPoint)listener.LocalEndpoint).Port;
        }
        finally
        {
            listener.Stop();
        }
    }

    /// <summary>Looks <paramref name="binaryName"/> up on PATH, then in /usr/sbin and /usr/bin.</summary>
    public static string? FindBinary(string binaryName)
    {
        var directories = (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Append("/usr/sbin")
            .Append("/usr/bin");
        foreach (var directory in directories)
        {
            var candidate = Path.Combine(directory, binaryName);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    private async Task<bool> AcceptsConnectionsAsync(CancellationToken cancellationToken)
    {
        using var client = new TcpClient();
        using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        attempt.CancelAfter(TimeSpan.FromMilliseconds(500));
        try
        {
            await client.ConnectAsync(IPAddress.Loopback, Port, attempt.Token).ConfigureAwait(false);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    private void Remember(string? line)
    {
        if (line is null)
        {
            return;
        }

        if (line.Contains(ReadyLine, StringComparison.Ordinal))
        {
            _ready = true;
        }

        lock (_outputGate)
        {
            _output.Enqueue(line);
            while (_output.Count > MaxOutputLines)
            {
                _output.Dequeue();
            }
        }
    }

    private void Signal(int signal)
    {
        if (_process is { HasExited: false } process)
        {
            _ = Kill(process.Id, signal);
        }
    }

    private static void KillProcess(Process process)
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill();
            }
        }
        catch (InvalidOperationException)
        {
            // Exited in the meantime.
        }
    }

    /// <inheritdoc />
    public override string ToString()
    {
        var builder = new StringBuilder(Path.GetFileName(BinaryPath)).Append(" on 127.0.0.1:").Append(Port);
        return ProcessId is { } pid ? builder.Append(" (pid ").Append(pid).Append(')').ToString() : builder.Append(" (stopped)").ToString();
    }

    /// <summary>The server could not bind its port: someone else took it.</summary>
    private sealed class PortTakenException(string message) : InvalidOperationException(message);

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
