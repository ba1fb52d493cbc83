using System.Diagnostics;
using System.Text.Json;
using Conveyor.Driver.Sdk;

namespace Conveyor.Samples.Shell;

/// <summary>
/// Runs the step's command with <c>/bin/sh -c</c> and streams every output line into the run's log. The command comes
/// from the step's <c>params.command</c> only — never from the resource, whose spec any operator (or a webhook's
/// body) can set; keep <c>command</c> out of the pipeline's <c>overridableParams</c> too. The process sees the run
/// through environment variables (<c>CONVEYOR_RUN_ID</c>, <c>CONVEYOR_STEP</c>, <c>CONVEYOR_ATTEMPT</c>,
/// <c>CONVEYOR_RESOURCE</c>, <c>CONVEYOR_SPEC</c>, <c>CONVEYOR_INPUTS</c>). Exit code 0 is success; cancellation (the
/// engine's, or shutdown) kills the whole process tree. A sample: it runs whatever the pipeline says, so give it a
/// sandbox of its own.
/// </summary>
public sealed class ShellDriver(string name, IReadOnlyCollection<string> resources, TimeProvider time) : IDriver
{
    private const int TailLines = 20;

    /// <inheritdoc />
    public string Name => name;

    /// <inheritdoc />
    public IReadOnlyCollection<string> Resources => resources;

    /// <inheritdoc />
    public async Task<DriverResult> ReconcileAsync(DriverEvent driverEvent, DriverContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(driverEvent);
        ArgumentNullException.ThrowIfNull(context);
        var command = Command(driverEvent);
        if (command is null)
        {
            return DriverResult.Fail("no command: set params.command on the step");
        }

        var info = new ProcessStartInfo("/bin/sh")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Directory.CreateTempSubdirectory("conveyor-shell-").FullName,
        };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add(command);
        info.Environment["CONVEYOR_RUN_ID"] = driverEvent.RunId;
        info.Environment["CONVEYOR_STEP"] = driverEvent.StepId ?? "";
        info.Environment["CONVEYOR_ATTEMPT"] = driverEvent.Attempt?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "";
        info.Environment["CONVEYOR_RESOURCE"] = driverEvent.Resource.Name;
        info.Environment["CONVEYOR_SPEC"] = driverEvent.Resource.Spec?.GetRawText() ?? "null";
        info.Environment["CONVEYOR_INPUTS"] = JsonSerializer.Serialize(driverEvent.Inputs);

        var started = time.GetTimestamp();
        await context.Logger.LogAsync($"$ {command}", Labels("command"), cancellationToken).ConfigureAwait(false);
        using var process = Process.Start(info) ?? throw new InvalidOperationException("/bin/sh did not start");
        var tail = new Queue<string>();
        var lines = 0;
        var gate = new SemaphoreSlim(1, 1);

        async Task PumpAsync(StreamReader reader, string stream)
        {
            while (await reader.ReadLineAsync(CancellationToken.None).ConfigureAwait(false) is { } line)
            {
                // Both pipes feed one log in arrival order; the SDK logger publishes one entry at a time.
                await gate.WaitAsync(CancellationToken.None).ConfigureAwait(false);
                try
                {
                    lines++;
                    tail.Enqueue(line);
                    if (tail.Count > TailLines)
                    {
                        tail.Dequeue();
                    }

                    await context.Logger.LogAsync(line, Labels(stream), CancellationToken.None).ConfigureAwait(false);
                }
                finally
                {
                    gate.Release();
                }
            }
        }

        var pumps = Task.WhenAll(PumpAsync(process.StandardOutput, "stdout"), PumpAsync(process.StandardError, "stderr"));
        try
        {
            await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
            await pumps.ConfigureAwait(false);
            gate.Dispose();
            throw;
        }

        await pumps.ConfigureAwait(false);
        gate.Dispose();
        var elapsed = time.GetElapsedTime(started);
        var data = new { exitCode = process.ExitCode, durationMs = (long)elapsed.TotalMilliseconds, lines };
        return process.ExitCode == 0
            ? DriverResult.Ok($"exit 0 after {elapsed.TotalSeconds:F1} s", data)
            : DriverResult.Fail($"exit {process.ExitCode}: {string.Join(" | ", tail.TakeLast(3))}") with
            {
                Data = JsonSerializer.SerializeToElement(new { exitCode = process.ExitCode, durationMs = (long)elapsed.TotalMilliseconds, lines, tail }),
            };
    }

    private static Dictionary<string, string> Labels(string stream) => new(StringComparer.Ordinal) { ["stream"] = stream };

    /// <summary>The step's <c>params.command</c>; deliberately nothing else.</summary>
    public static string? Command(DriverEvent driverEvent) =>
        driverEvent.Params is { ValueKind: JsonValueKind.Object } p && p.TryGetProperty("command", out var c) && c.ValueKind == JsonValueKind.String
            ? c.GetString()
            : null;
}
