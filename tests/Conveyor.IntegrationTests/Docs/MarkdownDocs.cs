using System.Text.RegularExpressions;

namespace Conveyor.IntegrationTests;

/// <summary>A fenced code block of a Markdown file, with the <c>doc-test</c> marker of the line before it, if any.</summary>
public sealed record CodeBlock(string File, int Line, string Info, string Text, string? Marker)
{
    /// <summary>Runnable: marked <c>&lt;!-- doc-test: run --&gt;</c>, or <c>run-with-keys</c> (on an engine with API keys on).</summary>
    public bool Runs => Marker is "run" or "run-with-keys";

    public override string ToString() => $"{File}:{Line}";
}

/// <summary>The README and every Markdown file under <c>docs/</c>: their code blocks and relative links.</summary>
public static partial class MarkdownDocs
{
    /// <summary>The repository root: the directory above the test binaries that holds <c>Conveyor.sln</c>.</summary>
    public static string Root { get; } = FindRoot();

    /// <summary>Repository-relative paths of the README and of every file under docs/, in a stable order.</summary>
    public static IReadOnlyList<string> Files { get; } =
    [
        "README.md",
        .. Directory.EnumerateFiles(Path.Combine(Root, "docs"), "*.md", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(Root, f).Replace('\\', '/'))
            .Order(StringComparer.Ordinal),
    ];

    public static string Read(string file) => File.ReadAllText(Path.Combine(Root, file)).Replace("\r\n", "\n", StringComparison.Ordinal);

    public static IEnumerable<CodeBlock> Blocks(string file)
    {
        var lines = Read(file).Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            if (!lines[i].StartsWith("```", StringComparison.Ordinal))
            {
                continue;
            }

            var start = i;
            var end = Array.FindIndex(lines, i + 1, l => l.StartsWith("```", StringComparison.Ordinal));
            Assert.True(end > 0, $"{file}:{start + 1}: a code block that is never closed");
            var marker = start > 0 && MarkerPattern().Match(lines[start - 1]) is { Success: true } m ? m.Groups[1].Value : null;
            yield return new CodeBlock(file, start + 1, lines[start][3..].Trim(), string.Join('\n', lines[(start + 1)..end]), marker);
            i = end;
        }
    }

    /// <summary>Relative link targets (no scheme, no pure anchor) outside code, with the line they are on.</summary>
    public static IEnumerable<(int Line, string Target)> RelativeLinks(string file)
    {
        var lines = Read(file).Split('\n');
        var fenced = false;
        for (var i = 0; i < lines.Length; i++)
        {
            if (lines[i].StartsWith("```", StringComparison.Ordinal))
            {
                fenced = !fenced;
                continue;
            }

            if (fenced)
            {
                continue;
            }

            foreach (Match link in LinkPattern().Matches(lines[i]))
            {
                var target = link.Groups[1].Value;
                if (!target.Contains("://", StringComparison.Ordinal) && !target.StartsWith('#') && !target.StartsWith("mailto:", StringComparison.Ordinal))
                {
                    yield return (i + 1, target);
                }
            }
        }
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

    [GeneratedRegex(@"^<!--\s*doc-test:\s*(run-with-keys|run|illustrative)\b")]
    private static partial Regex MarkerPattern();

    [GeneratedRegex(@"\]\(([^)\s]+)\)")]
    private static partial Regex LinkPattern();
}
