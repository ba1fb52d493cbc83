using System.Diagnostics;
using System.Globalization;
using Conveyor.Testing;
using Xunit.Abstractions;

namespace Conveyor.ClusterTests;

/// <summary>
/// A single node (the silo supervises its own nats-server and redis-server) whose servers are killed with SIGKILL
/// mid-load — no chance to flush anything: the silo restarts each one on its data, and every run finishes exactly once.
/// </summary>
public sealed class SingleNodeKillTests(ITestOutputHelper output)
{
    private const int Runs = 50;

    [Fact]
    public async Task Supervised_nats_server_and_redis_server_killed_with_sigkill_lose_no_run()
    {
        var data = Directory.CreateTempSubdirectory("conveyor-single-kill-").FullName;
        var natsPort = ServerProcess.FindFreePort();
        var settings = SiloProcess.Settings("single", "", "", new Dictionary<string, string>
        {
            ["Conveyor:Mode"] = "SingleNode",
            ["Conveyor:DataDirectory"] = data,
            ["Conveyor:LocalNatsPort"] = natsPort.ToString(CultureInfo.InvariantCulture),
            ["Logging:LogLevel:Conveyor.Api.Hosting.LocalServerSupervisor"] = "Information",
        });
        SiloProcess? silo = null;
        try
        {
            silo = await SiloProcess.StartAsync("single", settings);
            await ClusterLoad.DefineAsync(silo);
            await using var driver = await LoadDriver.StartAsync($"nats://127.0.0.1:{natsPort}", ClusterLoad.Driver, ClusterLoad.ResourceType, TimeSpan.FromMilliseconds(200));

            foreach (var server in new[] { "nats-server", "redis-server" })
            {
                var before = driver.TotalDeliveries;
                var ids = await ClusterLoad.StartRunsAsync([silo], server, Runs);
                await Eventually.TrueAsync(() => driver.TotalDeliveries >= before + Runs, TimeSpan.FromSeconds(60), "the runs are under way");
                var pid = ReadPid(data, server);
                var killedAt = DateTimeOffset.UtcNow;
                using (var process = Process.GetProcessById(pid))
                {
                    process.Kill();
                    await process.WaitForExitAsync();
                }

                await Eventually.TrueAsync(() => TryReadPid(data, server) is { } p && p != pid, TimeSpan.FromSeconds(30), $"the silo restarts {server}");
                var runs = await ClusterLoad.WaitForAllAsync(() => [silo], ids, TimeSpan.FromSeconds(120));
                ClusterLoad.AssertExactlyOnce(runs);
                await silo.WaitReadyAsync(TimeSpan.FromSeconds(30));
                output.WriteLine($"kill -9 of the supervised {server} → every run finished: {(ClusterLoad.LastFinish(runs) - killedAt).TotalSeconds:F1} s");
            }

            output.WriteLine($"driver saw {driver.DuplicateDeliveries} duplicate deliveries of {driver.TotalDeliveries} (record: exactly once)");
        }
        finally
        {
            // SIGTERM, so the silo stops the servers it supervises; a silo killed outright would leave them running.
            if (silo is not null)
            {
                try
                {
                    await silo.TerminateAsync(TimeSpan.FromSeconds(60));
                }
                catch (OperationCanceledException)
                {
                }

                await silo.DisposeAsync();
            }

            EndLeftovers(data);
            Directory.Delete(data, recursive: true);
        }
    }

    /// <summary>Ends the servers this test's silo started if it could not (their pid files are in its data directory).</summary>
    private static void EndLeftovers(string data)
    {
        foreach (var server in new[] { "nats-server", "redis-server" })
        {
            if (TryReadPid(data, server) is not { } pid)
            {
                continue;
            }

            try
            {
                using var process = Process.GetProcessById(pid);
                if (process.ProcessName.StartsWith(server.Split('-')[0], StringComparison.Ordinal))
                {
                    process.Kill();
                }
            }
            catch (Exception ex) when (ex is ArgumentException or InvalidOperationException)
            {
                // Gone already.
            }
        }
    }

    private static int ReadPid(string data, string server) => TryReadPid(data, server) ?? throw new InvalidOperationException($"no pid file for {server}");

    private static int? TryReadPid(string data, string server)
    {
        try
        {
            return int.Parse(File.ReadAllText(Path.Combine(data, "run", server + ".pid")), CultureInfo.InvariantCulture);
        }
        catch (Exception ex) when (ex is IOException or FormatException)
        {
            return null;
        }
    }
}
