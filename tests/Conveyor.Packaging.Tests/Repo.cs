namespace Conveyor.Packaging.Tests;

/// <summary>Where the repository and its build output are, seen from the test assembly.</summary>
internal static class Repo
{
    /// <summary>The folder that holds Conveyor.sln.</summary>
    public static string Root { get; } = FindRoot();

    /// <summary>The configuration the tests were built with (Release under <c>./conveyor.sh test</c>).</summary>
    public static string Configuration { get; } = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)).Parent!.Name;

    /// <summary>Build output of a project of this repository.</summary>
    public static string Built(string projectDirectory, string assemblyName)
    {
        var path = Path.Combine(Root, projectDirectory, "bin", Configuration, "net10.0", assemblyName + ".dll");
        return File.Exists(path) ? path : throw new InvalidOperationException($"{path} is not built");
    }

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Conveyor.sln")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("Conveyor.sln not found above " + AppContext.BaseDirectory);
    }
}
