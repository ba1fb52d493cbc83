using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Conveyor.ClusterTests;

/// <summary>
/// A .NET program of this repository (the silo, a sample driver) run as its own OS process from its build output, so
/// that a test can SIGKILL or SIGTERM it for real. Output is kept (last lines) for failure messages.
/// </summary>
public partial class DotnetProcess : IAsyncDisposable
{
    private const int SigKill = 9;
    private const int SigTerm = 15;
    private const int SigCont = 18;
    private const int SigStop = 19;
    private const int MaxLines = 400;
    private readonly Queue<string> _output = new();
    private readonly Lock _gate = new();
    private readonly Process _process;

    protected DotnetProcess(string name, string assemblyPath, IEnumerable<string> arguments)
    {
        Name = name;
        var startInfo = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(assemblyPath)!,
        };
        startInfo.ArgumentList.Add(assemblyPath);
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        startInfo.Environment["DOTNET_ENVIRONMENT"] = "Testing";
        startInfo.Environment["ASPNETCORE_ENVIRONMENT"] = "Testing";
        _process = new Process { StartInfo = startInfo };
        _process.OutputDataReceived += (_, e) => Remember(e.Data);
        _process.ErrorDataReceived += (_, e) => Remember(e.Data);
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public string Name { get; }

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    public string RecentOutput
    {
        get
        {
            lock (_gate)
            {
                return string.Join('\n', _output);
            }
        }
    }

    /// <summary>Lines written so far that contain <paramref name="text"/>.</summary>
    public int CountLines(string text)
    {
        lock (_gate)
        {
            return _output.Count(l => l.Contains(text, StringComparison.Ordinal));
        }
    }

    /// <summary>kill -9: no shutdown code runs.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _ = kill(_process.Id, SigKill);
        }

        await _process.WaitForExitAsync();
    }

    /// <summary>SIGSTOP: the process stops answering anything without closing a connection (a hung machine).</summary>
    public void Suspend()
    {
        if (!_process.HasExited)
        {
            _ = kill(_process.Id, SigStop);
        }
    }

    /// <summary>SIGCONT after <see cref="Suspend"/>.</summary>
    public void Resume()
    {
        if (!_process.HasExited)
        {
            _ = kill(_process.Id, SigCont);
        }
    }

    /// <summary>Waits for the process to exit by itself; false when it still runs after <paramref name="timeout"/>.</summary>
    public async Task<bool> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>SIGTERM, then waits for the process to exit on its own; returns its exit code.</summary>
    public async Task<int> TerminateAsync(TimeSpan timeout)
    {
        if (!_process.HasExited)
        {
            _ = kill(_process.Id, SigTerm);
        }

        using var cts = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cts.Token);
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        DisposeResources();
        if (!_process.HasExited)
        {
            _ = kill(_process.Id, SigKill);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases what a derived class holds besides the process.</summary>
    protected virtual void DisposeResources()
    {
    }

    /// <summary>Build output of a project of this repository, in the configuration the tests were built with.</summary>
    protected static string BuiltAssembly(string projectDirectory, string assemblyName)
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Conveyor.sln")))
        {
            dir = dir.Parent;
        }

        if (dir is null)
        {
            throw new InvalidOperationException("Conveyor.sln not found above " + AppContext.BaseDirectory);
        }

        // .../tests/Conveyor.ClusterTests/bin/<Configuration>/<tfm>/
        var tfm = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var configuration = tfm.Parent!.Name;
        var path = Path.Combine(dir.FullName, projectDirectory, "bin", configuration, tfm.Name, assemblyName + ".dll");
        return File.Exists(path) ? path : throw new InvalidOperationException($"{path} is not built");
    }

    private void Remember(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_gate)
        {
            _output.Enqueue(line);
            while (_output.Count > MaxLines)
            {
                _output.Dequeue();
            }
        }
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int signal);
}
