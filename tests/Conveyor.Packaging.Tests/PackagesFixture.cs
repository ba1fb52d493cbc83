using System.IO.Compression;
using System.Xml.Linq;

namespace Conveyor.Packaging.Tests;

/// <summary>
/// Puts every package into a local folder with the documented command (<c>dotnet pack Conveyor.sln -c Release -o
/// FOLDER</c>; here on the build the suite already made, with a version of this run's own), then creates two fresh
/// projects outside the repository as a user would — a console driver on the SDK and a web app embedding the engine —
/// that take Conveyor's packages from that folder only: no other source has this version. Third-party packages come
/// from the machine's configured source. The extracted copies of this version are removed from the global package
/// folder afterwards, so nothing of this run stays behind.
/// </summary>
public sealed class PackagesFixture : IAsyncLifetime
{
    /// <summary>A version no package source has: the fresh projects can only have found it in <see cref="Feed"/>.</summary>
    public string Version { get; } = "0.0.0-pkgtest-" + Guid.NewGuid().ToString("N")[..12];

    public string Work { get; } = Directory.CreateTempSubdirectory("conveyor-pkgtest-").FullName;

    public string Feed => Path.Combine(Work, "feed");

    public string DriverDll => Path.Combine(Work, "driver", "bin", "Release", "net10.0", "PkgDriver.dll");

    public string WebDll => Path.Combine(Work, "web", "bin", "Release", "net10.0", "PkgWeb.dll");

    /// <summary>The packable projects of src/: those whose project file says so.</summary>
    public static IReadOnlyList<string> PackableProjects { get; } = Directory
        .GetFiles(Path.Combine(Repo.Root, "src"), "*.csproj", SearchOption.AllDirectories)
        .Where(p => File.ReadAllText(p).Contains("<IsPackable>true</IsPackable>", StringComparison.Ordinal))
        .Select(p => Path.GetFileNameWithoutExtension(p))
        .Order(StringComparer.Ordinal)
        .ToList();

    public async Task InitializeAsync()
    {
        await Dotnet.RunAsync(Repo.Root, "pack", "Conveyor.sln", "-c", Repo.Configuration, "--no-build", "-nologo", "-o", Feed, $"-p:MinVerVersionOverride={Version}");
        await File.WriteAllTextAsync(Path.Combine(Work, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <add key="conveyor-local" value="{Feed}" />
              </packageSources>
            </configuration>
            """);

        // The driver: `dotnet new console`, the SDK, and the Generic Host to run it in.
        await Dotnet.RunAsync(Work, "new", "console", "-o", "driver", "-n", "PkgDriver");
        await Dotnet.RunAsync(Work, "add", "driver/PkgDriver.csproj", "package", "Conveyor.Driver.Sdk", "--version", Version);
        await Dotnet.RunAsync(Work, "add", "driver/PkgDriver.csproj", "package", "Microsoft.Extensions.Hosting", "--version", "10.0.15");
        await File.WriteAllTextAsync(Path.Combine(Work, "driver", "Program.cs"), DriverProgram);

        // The embedding app: `dotnet new web` and the engine package.
        await Dotnet.RunAsync(Work, "new", "web", "-o", "web", "-n", "PkgWeb");
        await Dotnet.RunAsync(Work, "add", "web/PkgWeb.csproj", "package", "Conveyor.Api", "--version", Version);
        await File.WriteAllTextAsync(Path.Combine(Work, "web", "Program.cs"), WebProgram);

        await Dotnet.RunAsync(Work, "build", "driver/PkgDriver.csproj", "-c", "Release", "-nologo");
        await Dotnet.RunAsync(Work, "build", "web/PkgWeb.csproj", "-c", "Release", "-nologo");
    }

    public Task DisposeAsync()
    {
        var globalPackages = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } configured
            ? configured
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        foreach (var id in Directory.GetFiles(Feed, "*.nupkg").Select(PackageId))
        {
            var extracted = Path.Combine(globalPackages, id.ToLowerInvariant(), Version);
            if (Directory.Exists(extracted))
            {
                Directory.Delete(extracted, recursive: true);
            }

            // The id's folder too, when this run's version was all it held.
            var idFolder = Path.GetDirectoryName(extracted)!;
            if (Directory.Exists(idFolder) && !Directory.EnumerateFileSystemEntries(idFolder).Any())
            {
                Directory.Delete(idFolder);
            }
        }

        Directory.Delete(Work, recursive: true);
        return Task.CompletedTask;
    }

    /// <summary>The nuspec of a package in the feed.</summary>
    public XElement Nuspec(string id)
    {
        using var zip = ZipFile.OpenRead(Path.Combine(Feed, $"{id}.{Version}.nupkg"));
        using var stream = zip.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal)).Open();
        return XElement.Load(stream);
    }

    /// <summary>The file names inside a package in the feed.</summary>
    public IReadOnlyList<string> Files(string id, string extension = "nupkg")
    {
        using var zip = ZipFile.OpenRead(Path.Combine(Feed, $"{id}.{Version}.{extension}"));
        return zip.Entries.Select(e => e.FullName).ToList();
    }

    private string PackageId(string nupkg)
    {
        var name = Path.GetFileNameWithoutExtension(nupkg);
        return name[..^(Version.Length + 1)];
    }

    // The driver of the install guide, reading its name, resource type and NATS URL from the command line.
    private const string DriverProgram = """
        using Conveyor.Driver.Sdk;
        using Microsoft.Extensions.DependencyInjection;
        using Microsoft.Extensions.Hosting;

        var builder = Host.CreateApplicationBuilder(args);
        builder.Services.AddConveyorDriver<BuildDriver>(o =>
        {
            o.Name = builder.Configuration["driver"] ?? "build";
            o.Resources = [builder.Configuration["resource"] ?? "app"];
            o.NatsUrl = builder.Configuration["nats"] ?? "nats://127.0.0.1:4222";
        });
        builder.Build().Run();

        sealed class BuildDriver : IDriver
        {
            public string Name => "build";
            public IReadOnlyCollection<string> Resources => ["app"];

            public async Task<DriverResult> ReconcileAsync(DriverEvent e, DriverContext context, CancellationToken ct)
            {
                await context.Logger.LogAsync($"building {e.Resource.Name}", cancellationToken: ct);
                return DriverResult.Ok("built by a packaged driver", new { image = "registry.local/web:1" });
            }
        }
        """;

    // The embedding app of the install guide: its own route, and Conveyor under /conveyor.
    private const string WebProgram = """
        var builder = WebApplication.CreateBuilder(args);
        builder.AddConveyor();
        var app = builder.Build();
        app.MapGet("/", () => "my app");
        app.MapConveyorApi("/conveyor");
        app.Run();
        """;
}
