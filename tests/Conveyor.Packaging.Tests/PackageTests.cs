using System.Xml.Linq;
using Conveyor.Testing;

namespace Conveyor.Packaging.Tests;

/// <summary>What a user installs: the packages in a local folder, and fresh projects outside the repository built from them.</summary>
[Collection(PackagingCollection.Name)]
public sealed class PackageTests(PackagesFixture fx) : IClassFixture<PackagesFixture>
{
    private static IEnumerable<XElement> Dependencies(XElement nuspec) => nuspec.Descendants().Where(e => e.Name.LocalName == "dependency");

    private static string? Metadata(XElement nuspec, string name) => nuspec.Descendants().FirstOrDefault(e => e.Name.LocalName == name)?.Value;

    [Fact]
    public void Every_packable_project_is_packed_with_its_metadata_readme_and_symbols()
    {
        Assert.Contains("Conveyor.Driver.Sdk", PackagesFixture.PackableProjects);
        Assert.Contains("Conveyor.Api", PackagesFixture.PackableProjects);
        Assert.Contains("Conveyor.Cli", PackagesFixture.PackableProjects);
        foreach (var id in PackagesFixture.PackableProjects)
        {
            var nuspec = fx.Nuspec(id);
            Assert.Equal(fx.Version, Metadata(nuspec, "version"));
            Assert.False(string.IsNullOrWhiteSpace(Metadata(nuspec, "description")), $"{id} has a description");
            Assert.Equal("Conveyor contributors", Metadata(nuspec, "authors"));
            Assert.Equal("Apache-2.0", Metadata(nuspec, "license"));
            Assert.Equal("README.md", Metadata(nuspec, "readme"));
            Assert.Contains("README.md", fx.Files(id));
            var repository = nuspec.Descendants().Single(e => e.Name.LocalName == "repository");
            Assert.Equal("git", repository.Attribute("type")?.Value);
            Assert.Matches("^[0-9a-f]{40}$", repository.Attribute("commit")?.Value ?? "");
            Assert.Contains(fx.Files(id, "snupkg"), f => f.EndsWith(".pdb", StringComparison.Ordinal));
        }
    }

    [Fact]
    public void The_driver_sdk_package_depends_on_nats_and_the_cli_is_a_dotnet_tool()
    {
        var sdk = Dependencies(fx.Nuspec("Conveyor.Driver.Sdk")).Select(d => d.Attribute("id")!.Value).ToList();
        Assert.Contains("NATS.Client.Core", sdk);
        Assert.Contains("NATS.Client.JetStream", sdk);
        Assert.Contains("Conveyor.Contracts", sdk);
        Assert.Contains(fx.Nuspec("Conveyor.Cli").Descendants(), e => e.Name.LocalName == "packageType" && e.Attribute("name")?.Value == "DotnetTool");
        Assert.Contains(fx.Files("Conveyor.Cli"), f => f.EndsWith("DotnetToolSettings.xml", StringComparison.Ordinal));
    }

    [Fact]
    public void Only_the_prometheus_add_on_depends_on_a_prerelease_package()
    {
        // A stable package must not depend on a prerelease one (NU5104 fails `dotnet pack` of a release): every
        // third-party dependency of the other packages is a stable version.
        foreach (var id in PackagesFixture.PackableProjects.Where(id => id != "Conveyor.Prometheus"))
        {
            var prerelease = Dependencies(fx.Nuspec(id))
                .Where(d => !d.Attribute("id")!.Value.StartsWith("Conveyor.", StringComparison.Ordinal) && d.Attribute("version")!.Value.Contains('-', StringComparison.Ordinal))
                .Select(d => $"{d.Attribute("id")!.Value} {d.Attribute("version")!.Value}")
                .ToList();
            Assert.True(prerelease.Count == 0, $"{id} depends on prereleases: {string.Join(", ", prerelease)}");
        }
    }

    [Fact]
    public async Task A_fresh_console_driver_and_a_fresh_web_app_built_from_the_packages_run_a_pipeline()
    {
        await using var nats = await NatsServerProcess.StartNewAsync();
        await using var redis = await RedisServerProcess.StartNewAsync();
        var port = ServerProcess.FindFreePort();
        var environment = Dotnet.CleanEnvironment(new Dictionary<string, string?> { ["ASPNETCORE_ENVIRONMENT"] = "Production", ["DOTNET_ENVIRONMENT"] = "Production" });
        await using var web = ChildProcess.Start(
            "dotnet",
            [
                fx.WebDll,
                $"--Urls=http://127.0.0.1:{port}",
                $"--ConnectionStrings:nats={nats.Url}",
                $"--ConnectionStrings:redis={redis.ConnectionString}",
                $"--Conveyor:SiloPort={ServerProcess.FindFreePort()}",
                $"--Conveyor:GatewayPort={ServerProcess.FindFreePort()}",
            ],
            Path.GetDirectoryName(fx.WebDll)!,
            environment);
        using var api = new ConveyorHttp(new Uri($"http://127.0.0.1:{port}"));
        await api.WaitReadyAsync("/conveyor/readyz", web, TimeSpan.FromSeconds(90));
        Assert.Equal("my app", await api.Http.GetStringAsync("/"));

        var driver = "pkg-" + Guid.NewGuid().ToString("N")[..8];
        var type = "app-" + Guid.NewGuid().ToString("N")[..8];
        await using var driverProcess = ChildProcess.Start(
            "dotnet", [fx.DriverDll, $"--driver={driver}", $"--resource={type}", $"--nats={nats.Url}"], Path.GetDirectoryName(fx.DriverDll)!, environment);

        var run = await api.RunOneStepPipelineAsync("/conveyor", type, driver, TimeSpan.FromSeconds(90));
        Assert.True(run.GetProperty("status").GetString() == "Succeeded", $"{run}\nweb:\n{web.Output}\ndriver:\n{driverProcess.Output}");
        var attempt = run.GetProperty("steps")[0].GetProperty("attempts")[0];
        Assert.Equal("built by a packaged driver", attempt.GetProperty("message").GetString());
    }
}
