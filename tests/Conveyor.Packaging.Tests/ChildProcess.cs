using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace Conveyor.Packaging.Tests;

/// <summary>
/// A process this test starts: run to completion (<see cref="RunAsync"/>) or kept running in the background and
/// stopped by its PID on dispose (SIGTERM first, so a silo stops the servers it supervises; SIGKILL after a grace).
/// Output is kept for failure messages.
/// </summary>
internal sealed partial class ChildProcess : IAsyncDisposable
{
    private const int SigTerm = 15;
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly Lock _gate = new();

    private ChildProcess(string fileName, IEnumerable<string> arguments, string workingDirectory, IDictionary<string, string?>? environment, bool cleanEnvironment)
    {
        var start = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        if (cleanEnvironment)
        {
            start.Environment.Clear();
        }

        foreach (var (key, value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null)
            {
                start.Environment.Remove(key);
            }
            else
            {
                start.Environment[key] = value;
            }
        }

        Description = $"{fileName} {string.Join(' ', arguments)}";
        _process = new Process { StartInfo = start };
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public string Description { get; }

    public bool HasExited => _process.HasExited;

    public string Output
    {
        get
        {
            lock (_gate)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>Starts a long-running process.</summary>
    public static ChildProcess Start(
        string fileName, IEnumerable<string> arguments, string workingDirectory, IDictionary<string, string?>? environment = null, bool cleanEnvironment = false) =>
        new(fileName, arguments, workingDirectory, environment, cleanEnvironment);

    /// <summary>Runs a command to its end; fails the test with its output when it exits non-zero or overruns.</summary>
    public static async Task<string> RunAsync(
        string fileName, IEnumerable<string> arguments, string workingDirectory, TimeSpan timeout, IDictionary<string, string?>? environment = null, bool cleanEnvironment = false)
    {
        await using var process = new ChildProcess(fileName, arguments, workingDirectory, environment, cleanEnvironment);
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process._process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"{process.Description} did not finish within {timeout}:\n{process.Output}");
        }

        // The asynchronous readers may still hold the last lines.
        process._process.WaitForExit();
        if (process._process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{process.Description} exited with {process._process.ExitCode}:\n{process.Output}");
        }

        return process.Output;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _ = kill(_process.Id, SigTerm);
            using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(20));
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

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_gate)
        {
            if (_output.Length < 200_000)
            {
                _output.AppendLine(line);
            }
        }
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int sig);
}
