using System.Formats.Tar;
using System.IO.Compression;
using Conveyor.Testing;

namespace Conveyor.Packaging.Tests;

/// <summary>
/// Builds the release artifacts once with <c>build/release.sh</c> (the silo as a self-contained linux-x64 archive,
/// the command line as one file) and unpacks the archive into a temp folder.
/// </summary>
public sealed class ReleaseFixture : IAsyncLifetime
{
    public string Work { get; } = Directory.CreateTempSubdirectory("conveyor-release-").FullName;

    public string Silo { get; private set; } = "";

    public string Cli { get; private set; } = "";

    /// <summary>A PATH with nats-server and redis-server and nothing else: no dotnet.</summary>
    public string Bin => Path.Combine(Work, "bin");

    public async Task InitializeAsync()
    {
        var output = Path.Combine(Work, "out");
        await ChildProcess.RunAsync("bash", [Path.Combine(Repo.Root, "build", "release.sh"), output], Repo.Root, Dotnet.BuildTimeout, Dotnet.CleanEnvironment());
        var archive = Assert.Single(Directory.GetFiles(output, "conveyor-silo-*-linux-x64.tar.gz"));
        Cli = Assert.Single(Directory.GetFiles(output, "conveyor-*-linux-x64"), f => !f.EndsWith(".tar.gz", StringComparison.Ordinal));

        var unpacked = Path.Combine(Work, "unpacked");
        Directory.CreateDirectory(unpacked);
        await using (var gzip = new GZipStream(File.OpenRead(archive), CompressionMode.Decompress))
        {
            await TarFile.ExtractToDirectoryAsync(gzip, unpacked, overwriteFiles: false);
        }

        Silo = Path.Combine(Assert.Single(Directory.GetDirectories(unpacked, "conveyor-silo-*")), "conveyor-silo");
        Directory.CreateDirectory(Bin);
        foreach (var server in new[] { "nats-server", "redis-server" })
        {
            var found = new[] { "/usr/sbin", "/usr/bin", "/usr/local/bin" }.Select(d => Path.Combine(d, server)).First(File.Exists);
            File.CreateSymbolicLink(Path.Combine(Bin, server), found);
        }
    }

    public Task DisposeAsync()
    {
        Directory.Delete(Work, recursive: true);
        return Task.CompletedTask;
    }
}

[Collection(PackagingCollection.Name)]
public sealed class ReleaseArchiveTests(ReleaseFixture fx) : IClassFixture<ReleaseFixture>
{
    [Fact]
    public void The_archive_is_self_contained_and_the_cli_is_one_file()
    {
        var folder = Path.GetDirectoryName(fx.Silo)!;
        Assert.True(File.Exists(fx.Silo), "the silo's executable");
        Assert.True(File.Exists(Path.Combine(folder, "libcoreclr.so")), "the runtime ships inside the archive");
        Assert.True(File.Exists(Path.Combine(folder, "Microsoft.AspNetCore.dll")), "ASP.NET Core ships inside the archive");
        Assert.True(File.Exists(Path.Combine(folder, "appsettings.json")));
        Assert.True(File.Exists(Path.Combine(folder, "LICENSE")));
        // Self-contained: the runtime configuration lists the frameworks it carries, and asks for none installed.
        var runtimeConfig = File.ReadAllText(Path.Combine(folder, "conveyor-silo.runtimeconfig.json"));
        Assert.Contains("\"includedFrameworks\"", runtimeConfig, StringComparison.Ordinal);
        Assert.DoesNotContain("\"frameworks\"", runtimeConfig, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(fx.Cli)!, "*.dll"));
    }

    [Fact]
    public async Task The_unpacked_silo_runs_a_pipeline_with_no_dotnet_on_the_machine()
    {
        // Nothing of .NET reaches the silo: an empty environment, and a PATH that holds only the two servers it supervises.
        var noDotnet = new Dictionary<string, string?> { ["PATH"] = fx.Bin, ["HOME"] = fx.Work };
        var port = ServerProcess.FindFreePort();
        var natsPort = ServerProcess.FindFreePort();
        await using var silo = ChildProcess.Start(
            fx.Silo,
            [
                $"--Urls=http://127.0.0.1:{port}",
                $"--Conveyor:LocalNatsPort={natsPort}",
                $"--Conveyor:SiloPort={ServerProcess.FindFreePort()}",
                $"--Conveyor:GatewayPort={ServerProcess.FindFreePort()}",
                $"--Conveyor:DataDirectory={Path.Combine(fx.Work, "data")}",
            ],
            Path.GetDirectoryName(fx.Silo)!,
            noDotnet,
            cleanEnvironment: true);
        using var api = new ConveyorHttp(new Uri($"http://127.0.0.1:{port}"));
        await api.WaitReadyAsync("/readyz", silo, TimeSpan.FromSeconds(90));

        // compose.yaml's health check of the silo (bash asking /readyz over /dev/tcp) passes against a ready silo.
        var compose = new YamlDotNet.Serialization.DeserializerBuilder().Build().Deserialize<Dictionary<string, object>>(
            await File.ReadAllTextAsync(Path.Combine(Repo.Root, "compose.yaml")));
        var check = (List<object>)((Dictionary<object, object>)((Dictionary<object, object>)((Dictionary<object, object>)compose["services"])["conveyor"])["healthcheck"])["test"];
        Assert.Equal(["CMD", "bash", "-c"], check.Take(3).Cast<string>());
        await ChildProcess.RunAsync("bash", ["-c", ((string)check[3]).Replace("/8080", $"/{port}", StringComparison.Ordinal)], fx.Work, TimeSpan.FromSeconds(30));

        // The driver is any program that speaks the protocol; here the sample, run with the SDK's dotnet.
        var driver = "rel-" + Guid.NewGuid().ToString("N")[..8];
        var type = "app-" + Guid.NewGuid().ToString("N")[..8];
        var echo = Repo.Built("samples/EchoDriver", "EchoDriver");
        await using var driverProcess = ChildProcess.Start(
            "dotnet", [echo, "--drivers", driver, "--resources", type, "--nats", $"nats://127.0.0.1:{natsPort}"], Path.GetDirectoryName(echo)!, Dotnet.CleanEnvironment());

        var run = await api.RunOneStepPipelineAsync("", type, driver, TimeSpan.FromSeconds(90));
        var runId = run.GetProperty("id").GetString()!;
        Assert.True(run.GetProperty("status").GetString() == "Succeeded", $"{run}\nsilo:\n{silo.Output}\ndriver:\n{driverProcess.Output}");

        // The single-file command line needs no .NET either.
        var shown = await ChildProcess.RunAsync(fx.Cli, ["--server", $"http://127.0.0.1:{port}", "runs", "show", runId], fx.Work, TimeSpan.FromSeconds(60), noDotnet, cleanEnvironment: true);
        Assert.Contains("Succeeded", shown, StringComparison.Ordinal);
        Assert.Contains(runId, shown, StringComparison.Ordinal);
    }
}
