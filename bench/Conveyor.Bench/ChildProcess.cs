using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;

namespace Conveyor.Bench;

/// <summary>
/// A process the tool starts (the silo, driver processes, the peers' redis-server and workers), whose RSS and CPU time can be read from outside. Stopping
/// sends SIGTERM (or closes stdin) and kills it by its PID only if it does not exit in time.
/// </summary>
internal sealed partial class ChildProcess : IAsyncDisposable
{
    private const int SigTerm = 15;
    private readonly Process _process;
    private readonly Queue<string> _tail = new();
    private readonly Lock _gate = new();
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly string _readyLine;
    private readonly bool _readyIfContains;
    private Action<string>? _onLine;

    private ChildProcess(Process process, string readyLine, bool readyIfContains)
    {
        _process = process;
        _readyLine = readyLine;
        _readyIfContains = readyIfContains;
    }

    public int Id => _process.Id;

    public string Name { get; private init; } = "";

    /// <summary>The last lines the process wrote, for error messages.</summary>
    public string Tail
    {
        get
        {
            lock (_gate)
            {
                return string.Join('\n', _tail);
            }
        }
    }

    /// <summary>Resident set size now (VmRSS), in bytes.</summary>
    public long Rss
    {
        get
        {
            _process.Refresh();
            return _process.WorkingSet64;
        }
    }

    /// <summary>User plus system CPU time used so far.</summary>
    public TimeSpan Cpu
    {
        get
        {
            _process.Refresh();
            return _process.TotalProcessorTime;
        }
    }

    /// <summary>
    /// CPU time of this process's direct children (the single-node silo's own nats-server and redis-server), summed by
    /// command name; empty where <c>/proc</c> does not say (not Linux).
    /// </summary>
    public Dictionary<string, TimeSpan> ChildrenCpu()
    {
        var byName = new Dictionary<string, TimeSpan>(StringComparer.Ordinal);
        var tasks = $"/proc/{Id}/task";
        if (!Directory.Exists(tasks))
        {
            return byName;
        }

        // A child is listed under the thread that started it.
        var children = new HashSet<int>();
        foreach (var task in Directory.EnumerateDirectories(tasks))
        {
            if (TryRead(Path.Combine(task, "children")) is { } list)
            {
                foreach (var pid in list.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                {
                    children.Add(int.Parse(pid, System.Globalization.CultureInfo.InvariantCulture));
                }
            }
        }

        foreach (var child in children)
        {
            // The command name, not Process.ProcessName: redis-server rewrites its command line to carry its address.
            if (TryRead($"/proc/{child}/comm") is not { } comm)
            {
                continue;
            }

            try
            {
                using var process = Process.GetProcessById(child);
                var name = comm.Trim();
                byName[name] = byName.GetValueOrDefault(name) + process.TotalProcessorTime;
            }
            catch (Exception ex) when (ex is ArgumentException or InvalidOperationException)
            {
                // It exited meanwhile.
            }
        }

        return byName;
    }

    private static string? TryRead(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Starts <c>dotnet <paramref name="assembly"/> args…</c>.</summary>
    /// <param name="readyLine">A line on stdout that means ready, or null when readiness is checked otherwise.</param>
    public static ChildProcess Start(
        string name, string assembly, IEnumerable<string> arguments, string? readyLine = null, string? workingDirectory = null, IEnumerable<string>? environment = null)
    {
        if (!File.Exists(assembly))
        {
            throw new FileNotFoundException($"{name}: {assembly} does not exist; build it first (dotnet build -c Release bench/Conveyor.Bench)", assembly);
        }

        return StartProgram(name, "dotnet", [assembly, .. arguments], readyLine, workingDirectory ?? Path.GetDirectoryName(assembly)!, environment);
    }

    /// <summary>Starts <paramref name="program"/> (a path, or a name looked up on PATH) with its arguments.</summary>
    /// <param name="readyLine">A line on stdout that means ready, or null when readiness is checked otherwise.</param>
    /// <param name="readyIfContains">Whether a line that contains <paramref name="readyLine"/> (a log line) means ready too.</param>
    /// <param name="onLine">Called with every line the process writes, as it comes.</param>
    public static ChildProcess StartProgram(
        string name,
        string program,
        IEnumerable<string> arguments,
        string? readyLine,
        string workingDirectory,
        IEnumerable<string>? environment = null,
        bool readyIfContains = false,
        Action<string>? onLine = null)
    {
        var startInfo = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        foreach (var variable in environment ?? [])
        {
            var eq = variable.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new ArgumentException($"{name}: environment variable '{variable}' is not NAME=VALUE");
            }

            startInfo.Environment[variable[..eq]] = variable[(eq + 1)..];
        }

        var process = Process.Start(startInfo) ?? throw new InvalidOperationException($"{name} did not start");
        var child = new ChildProcess(process, readyLine ?? "\0", readyIfContains) { Name = name, _onLine = onLine };
        process.OutputDataReceived += (_, e) => child.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => child.OnLine(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    /// <summary>Waits for the process to exit; returns its exit code.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(deadline.Token);
        return _process.ExitCode;
    }

    /// <summary>Waits for the ready line.</summary>
    public async Task WaitReadyAsync(TimeSpan timeout)
    {
        var exited = _process.WaitForExitAsync();
        var done = await Task.WhenAny(_ready.Task, exited, Task.Delay(timeout));
        if (done != _ready.Task)
        {
            throw new InvalidOperationException($"{Name} {(done == exited ? "exited" : "was not ready in time")}:\n{Tail}");
        }
    }

    public bool HasExited => _process.HasExited;

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            try
            {
                _process.StandardInput.Close();
            }
            catch (IOException)
            {
            }

            _ = Kill(_process.Id, SigTerm);
            using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            try
            {
                await _process.WaitForExitAsync(grace.Token);
            }
            catch (OperationCanceledException)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }
        }

        _process.Dispose();
    }

    /// <summary>Path of a program the tool runs, recorded at build time (see the project file).</summary>
    public static string BuiltAssembly(string key, string environmentOverride) =>
        Environment.GetEnvironmentVariable(environmentOverride) is { Length: > 0 } path
            ? path
            : typeof(ChildProcess).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().First(a => a.Key == key).Value!;

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }

        if (line == _readyLine || (_readyIfContains && line.Contains(_readyLine, StringComparison.Ordinal)))
        {
            _ready.TrySetResult();
        }

        _onLine?.Invoke(line);

        lock (_gate)
        {
            _tail.Enqueue(line);
            while (_tail.Count > 50)
            {
                _tail.Dequeue();
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
