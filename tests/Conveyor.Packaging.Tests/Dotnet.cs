using System.Collections;

namespace Conveyor.Packaging.Tests;

/// <summary>Runs the dotnet CLI as a user would in a shell, without the MSBuild state of the test host.</summary>
internal static class Dotnet
{
    public static readonly TimeSpan BuildTimeout = TimeSpan.FromMinutes(10);

    /// <summary>The test host's environment less MSBuild's variables (a child build must start from scratch).</summary>
    public static Dictionary<string, string?> CleanEnvironment(IDictionary<string, string?>? extra = null)
    {
        var environment = new Dictionary<string, string?>();
        foreach (DictionaryEntry entry in Environment.GetEnvironmentVariables())
        {
            var key = (string)entry.Key;
            if (key.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase) || key.StartsWith("VSTEST", StringComparison.OrdinalIgnoreCase) || key == "DOTNET_HOST_PATH")
            {
                environment[key] = null;
            }
        }

        foreach (var (key, value) in extra ?? new Dictionary<string, string?>())
        {
            environment[key] = value;
        }

        return environment;
    }

    public static Task<string> RunAsync(string workingDirectory, params string[] arguments) =>
        ChildProcess.RunAsync("dotnet", arguments, workingDirectory, BuildTimeout, CleanEnvironment());
}
