using System.Reflection;
using System.Text;
using System.Text.RegularExpressions;

namespace Conveyor.IntegrationTests;

/// <summary>
/// The README stays a short front door with the two quick-start commands, every relative link in the docs resolves,
/// every shell example is either run by <see cref="DocumentationExamplesTests"/> or says why not, and the generated
/// CLI help reference matches the command line. No engine needed.
/// </summary>
public sealed partial class DocumentationLintTests
{
    private const string CliHelpFile = "docs/reference/cli-help.md";

    [Fact]
    public void The_readme_stays_under_200_lines_and_keeps_exactly_the_two_quick_start_commands()
    {
        var readme = MarkdownDocs.Read("README.md");
        Assert.True(readme.Split('\n').Length < 200, $"README.md has {readme.Split('\n').Length} lines: move detail to docs/");
        var quickStart = Assert.Single(MarkdownDocs.Blocks("README.md"), b => b.Text.Contains("./conveyor.sh", StringComparison.Ordinal));
        var commands = quickStart.Text.Split('\n').Select(l => l.Split('#')[0].Trim()).Where(l => l.Length > 0).ToArray();
        Assert.Equal(["./conveyor.sh run", "./conveyor.sh test"], commands);
    }

    [Fact]
    public void Every_relative_link_in_the_readme_and_the_docs_points_at_a_file_that_exists()
    {
        var broken = new List<string>();
        foreach (var file in MarkdownDocs.Files)
        {
            foreach (var (line, target) in MarkdownDocs.RelativeLinks(file))
            {
                var path = Path.GetFullPath(Path.Combine(MarkdownDocs.Root, Path.GetDirectoryName(file)!, Uri.UnescapeDataString(target.Split('#')[0])));
                if (!File.Exists(path) && !Directory.Exists(path))
                {
                    broken.Add($"{file}:{line}: {target}");
                }
            }
        }

        Assert.True(broken.Count == 0, "broken links:\n" + string.Join('\n', broken));
    }

    [Fact]
    public void Every_shell_example_that_calls_the_api_or_the_cli_is_run_by_a_test_or_says_why_not()
    {
        var unmarked = MarkdownDocs.Files
            .SelectMany(MarkdownDocs.Blocks)
            .Where(b => b.Info is "sh" or "bash" or "shell" && CallsConveyor().IsMatch(b.Text) && b.Marker is null)
            .Select(b => b.ToString())
            .ToList();
        Assert.True(unmarked.Count == 0, "mark these blocks <!-- doc-test: run --> or <!-- doc-test: illustrative (why) -->:\n" + string.Join('\n', unmarked));
        Assert.Contains(MarkdownDocs.Blocks("README.md"), b => b.Runs);
    }

    [Fact]
    public async Task The_cli_help_reference_is_generated_from_the_command_line_and_up_to_date()
    {
        var generated = await GenerateCliHelpAsync();
        var path = Path.Combine(MarkdownDocs.Root, CliHelpFile);
        if (Environment.GetEnvironmentVariable("CONVEYOR_REGENERATE_DOCS") == "1")
        {
            await File.WriteAllTextAsync(path, generated);
        }

        Assert.True(
            File.Exists(path) && MarkdownDocs.Read(CliHelpFile) == generated,
            $"{CliHelpFile} is stale: regenerate it with CONVEYOR_REGENERATE_DOCS=1 dotnet test tests/Conveyor.IntegrationTests --filter \"FullyQualifiedName~DocumentationLintTests\"");
    }

    [Fact]
    public void Every_conveyor_setting_the_docs_name_is_a_property_of_an_options_class()
    {
        var sections = OptionsSections();
        var missing = new List<string>();
        foreach (var file in MarkdownDocs.Files)
        {
            var lines = MarkdownDocs.Read(file).Split('\n');
            for (var i = 0; i < lines.Length; i++)
            {
                foreach (Match m in SettingMention().Matches(lines[i]))
                {
                    if (!SettingExists(sections, m.Groups[1].Value))
                    {
                        missing.Add($"{file}:{i + 1}: {m.Groups[1].Value}");
                    }
                }
            }
        }

        Assert.True(missing.Count == 0, "settings the docs name that no options class has:\n" + string.Join('\n', missing));
    }

    /// <summary>
    /// Every options class with a <c>Section</c> constant under <c>Conveyor</c>, and the two Orleans option types the
    /// hosting extensions bind under it.
    /// </summary>
    private static Dictionary<string, Type> OptionsSections()
    {
        var sections = new Dictionary<string, Type>(StringComparer.OrdinalIgnoreCase)
        {
            ["Conveyor:Membership"] = typeof(Orleans.Configuration.ClusterMembershipOptions),
            ["Conveyor:Messaging"] = typeof(Orleans.Configuration.SiloMessagingOptions),
        };
        var assemblies = new[] { typeof(Conveyor.Api.Hosting.ConveyorOptions).Assembly, typeof(Conveyor.Grains.Nats.ConveyorNatsOptions).Assembly, typeof(Conveyor.Driver.Sdk.DriverOptions).Assembly };
        foreach (var type in assemblies.SelectMany(a => a.GetTypes()))
        {
            if (type.GetField("Section", BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static) is { IsLiteral: true } field
                && field.GetRawConstantValue() is string section && section.StartsWith("Conveyor", StringComparison.Ordinal))
            {
                sections[section] = type;
            }
        }

        return sections;
    }

    /// <summary>The longest section the setting starts with, then a property per remaining segment (<c>*</c>: any).</summary>
    private static bool SettingExists(Dictionary<string, Type> sections, string setting)
    {
        var parts = setting.Split(':');
        for (var n = parts.Length; n >= 1; n--)
        {
            if (!sections.TryGetValue(string.Join(':', parts[..n]), out var type))
            {
                continue;
            }

            foreach (var part in parts[n..])
            {
                if (part == "*")
                {
                    return true;
                }

                var property = type.GetProperty(part, BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase);
                if (property is null)
                {
                    return false;
                }

                type = property.PropertyType;
            }

            return true;
        }

        return false;
    }

    /// <summary><c>conveyor --help</c>, then the help of every command it lists, depth first.</summary>
    private static async Task<string> GenerateCliHelpAsync()
    {
        using var cli = new CliRunner();
        var text = new StringBuilder();
        text.Append("# `conveyor` help\n\n")
            .Append("Generated from the command line by `DocumentationLintTests` (regenerate: see [docs/README.md](../README.md#examples-are-tests));\n")
            .Append("a test fails when it differs from `conveyor <command> --help`. The guide is [cli.md](cli.md).\n");
        async Task AddAsync(string[] path)
        {
            var (code, output, error) = await cli.RunAsync([.. path, "--help"]);
            // The usage line names the running executable: the test host here, conveyor when installed.
            output = output.Replace("\n  testhost", "\n  conveyor", StringComparison.Ordinal);
            Assert.True(code == 0, error);
            text.Append("\n## conveyor").Append(path.Length == 0 ? "" : " " + string.Join(' ', path)).Append("\n\n```text\n")
                .Append(output.TrimEnd()).Append("\n```\n");
            var commands = output.Split("\nCommands:\n", 2);
            if (commands.Length < 2)
            {
                return;
            }

            foreach (var line in commands[1].Split('\n'))
            {
                if (CommandLine().Match(line) is { Success: true } m)
                {
                    // The longest alias reads best: "definitions" rather than "rd".
                    await AddAsync([.. path, m.Groups[1].Value.Split(", ").MaxBy(a => a.Length)!]);
                }
                else if (line.Trim().Length == 0)
                {
                    break;
                }
            }
        }

        await AddAsync([]);
        return text.ToString();
    }

    [GeneratedRegex(@"`(Conveyor(?::[A-Za-z0-9*]+)+)`")]
    private static partial Regex SettingMention();

    [GeneratedRegex(@"(^|[\s(|;])(curl|conveyor) ", RegexOptions.Multiline)]
    private static partial Regex CallsConveyor();

    /// <summary>A line of a help's command list: two spaces, the name (aliases after a comma), arguments, description.</summary>
    [GeneratedRegex(@"^  ([a-z][a-z-]*(?:, [a-z][a-z-]*)*)")]
    private static partial Regex CommandLine();
}
