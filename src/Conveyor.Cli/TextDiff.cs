using System.Text;

namespace Conveyor.Cli;

/// <summary>A unified diff of two texts, line by line (longest common subsequence), with three lines of context.</summary>
internal static class TextDiff
{
    private const int Context = 3;

    /// <summary>The diff of <paramref name="before"/> and <paramref name="after"/>; empty when they are equal.</summary>
    public static string Unified(string before, string after, string beforeName, string afterName)
    {
        var a = Lines(before);
        var b = Lines(after);
        var edits = Edits(a, b);
        if (edits.All(e => e.Op == ' '))
        {
            return "";
        }

        var sb = new StringBuilder();
        sb.Append("--- ").Append(beforeName).Append('\n');
        sb.Append("+++ ").Append(afterName).Append('\n');
        var i = 0;
        while (i < edits.Count)
        {
            // Find the next change, then grow a hunk around every change that is within 2 × context of the last.
            while (i < edits.Count && edits[i].Op == ' ')
            {
                i++;
            }

            if (i == edits.Count)
            {
                break;
            }

            var start = Math.Max(0, i - Context);
            var end = i;
            while (end < edits.Count)
            {
                if (edits[end].Op != ' ')
                {
                    end++;
                    continue;
                }

                var run = end;
                while (run < edits.Count && edits[run].Op == ' ')
                {
                    run++;
                }

                if (run == edits.Count || run - end > 2 * Context)
                {
                    end = Math.Min(edits.Count, end + Context);
                    break;
                }

                end = run;
            }

            var hunk = edits.GetRange(start, end - start);
            var aStart = hunk.FirstOrDefault(e => e.Op != '+')?.A ?? (start < edits.Count ? edits[start].A : a.Count);
            var bStart = hunk.FirstOrDefault(e => e.Op != '-')?.B ?? (start < edits.Count ? edits[start].B : b.Count);
            var aCount = hunk.Count(e => e.Op != '+');
            var bCount = hunk.Count(e => e.Op != '-');
            sb.Append("@@ -").Append(Range(aStart, aCount)).Append(" +").Append(Range(bStart, bCount)).Append(" @@\n");
            foreach (var e in hunk)
            {
                sb.Append(e.Op).Append(e.Text).Append('\n');
            }

            i = end;
        }

        return sb.ToString();
    }

    private static string Range(int start, int count) =>
        count == 0 ? $"{start},0" : count == 1 ? $"{start + 1}" : $"{start + 1},{count}";

    private static List<string> Lines(string text) =>
        text.Length == 0 ? [] : [.. text.ReplaceLineEndings("\n").TrimEnd('\n').Split('\n')];

    private sealed record Edit(char Op, string Text, int A, int B);

    private static List<Edit> Edits(List<string> a, List<string> b)
    {
        // Lengths of the longest common subsequence of every pair of suffixes; documents are small.
        var lcs = new int[a.Count + 1, b.Count + 1];
        for (var i = a.Count - 1; i >= 0; i--)
        {
            for (var j = b.Count - 1; j >= 0; j--)
            {
                lcs[i, j] = a[i] == b[j] ? lcs[i + 1, j + 1] + 1 : Math.Max(lcs[i + 1, j], lcs[i, j + 1]);
            }
        }

        var edits = new List<Edit>();
        int x = 0, y = 0;
        while (x < a.Count || y < b.Count)
        {
            if (x < a.Count && y < b.Count && a[x] == b[y])
            {
                edits.Add(new Edit(' ', a[x], x++, y++));
            }
            else if (x < a.Count && (y == b.Count || lcs[x + 1, y] >= lcs[x, y + 1]))
            {
                edits.Add(new Edit('-', a[x], x++, y));
            }
            else
            {
                edits.Add(new Edit('+', b[y], x, y++));
            }
        }

        return edits;
    }
}
