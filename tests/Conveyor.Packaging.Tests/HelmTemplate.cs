using System.Collections;
using System.Globalization;
using System.Text;
using YamlDotNet.Serialization;

namespace Conveyor.Packaging.Tests;

/// <summary>
/// Renders the Go-template subset the chart uses — actions with trim markers, <c>if</c>/<c>else</c>/<c>end</c>,
/// <c>range $k, $v :=</c>, fields of <c>.Values</c>, <c>.Release</c> and <c>.Chart</c>, variables, parenthesised
/// pipelines and the functions <c>quote default required not printf b64enc toYaml indent nindent</c> — with Helm's
/// meaning. No helm binary can be installed here; anything outside the subset fails loudly, so the chart cannot grow
/// past what this check understands.
/// </summary>
internal static class HelmTemplate
{
    public static string Render(string template, IDictionary<string, object?> root)
    {
        var tokens = Tokenize(template);
        var position = 0;
        var nodes = Parse(tokens, ref position, out var terminator);
        if (terminator is not null)
        {
            throw new FormatException($"unexpected {{{{ {terminator} }}}}");
        }

        var output = new StringBuilder();
        Execute(nodes, new Scope(root, new Dictionary<string, object?>()), output);
        return output.ToString();
    }

    private sealed record Token(bool IsAction, string Text);

    private static List<Token> Tokenize(string template)
    {
        var tokens = new List<Token>();
        var i = 0;
        var trimNextText = false;
        while (i < template.Length)
        {
            var open = template.IndexOf("{{", i, StringComparison.Ordinal);
            var text = open < 0 ? template[i..] : template[i..open];
            if (trimNextText)
            {
                text = text.TrimStart();
            }

            if (open < 0)
            {
                tokens.Add(new Token(false, text));
                break;
            }

            var close = template.IndexOf("}}", open, StringComparison.Ordinal);
            var action = template[(open + 2)..close];
            if (action.StartsWith('-'))
            {
                text = text.TrimEnd();
                action = action[1..];
            }

            trimNextText = action.EndsWith('-');
            if (trimNextText)
            {
                action = action[..^1];
            }

            tokens.Add(new Token(false, text));
            tokens.Add(new Token(true, action.Trim()));
            i = close + 2;
        }

        return tokens;
    }

    private abstract record Node;

    private sealed record TextNode(string Text) : Node;

    private sealed record ActionNode(string Pipeline) : Node;

    private sealed record IfNode(string Condition, List<Node> Then, List<Node> Else) : Node;

    private sealed record RangeNode(string Key, string Value, string Pipeline, List<Node> Body) : Node;

    private static List<Node> Parse(List<Token> tokens, ref int position, out string? terminator)
    {
        var nodes = new List<Node>();
        while (position < tokens.Count)
        {
            var token = tokens[position++];
            if (!token.IsAction)
            {
                nodes.Add(new TextNode(token.Text));
                continue;
            }

            var words = token.Text.Split(' ', 2, StringSplitOptions.RemoveEmptyEntries);
            switch (words[0])
            {
                case "end":
                case "else":
                    terminator = words[0];
                    return nodes;
                case "if":
                    var then = Parse(tokens, ref position, out var end);
                    var otherwise = new List<Node>();
                    if (end == "else")
                    {
                        otherwise = Parse(tokens, ref position, out end);
                    }

                    Expect(end, "end");
                    nodes.Add(new IfNode(words[1], then, otherwise));
                    break;
                case "range":
                    // range $k, $v := PIPELINE
                    var parts = words[1].Split(":=", 2);
                    var names = parts[0].Split(',', StringSplitOptions.TrimEntries);
                    var body = Parse(tokens, ref position, out var rangeEnd);
                    Expect(rangeEnd, "end");
                    nodes.Add(new RangeNode(names[0], names[1], parts[1].Trim(), body));
                    break;
                case "define" or "template" or "include" or "with" or "block" or "tpl":
                    throw new NotSupportedException($"{{{{ {token.Text} }}}} is outside the subset this check renders");
                default:
                    nodes.Add(new ActionNode(token.Text));
                    break;
            }
        }

        terminator = null;
        return nodes;
    }

    private static void Expect(string? actual, string expected)
    {
        if (actual != expected)
        {
            throw new FormatException($"expected {{{{ {expected} }}}}, found {actual ?? "the end of the template"}");
        }
    }

    private sealed record Scope(IDictionary<string, object?> Root, Dictionary<string, object?> Variables);

    private static void Execute(List<Node> nodes, Scope scope, StringBuilder output)
    {
        foreach (var node in nodes)
        {
            switch (node)
            {
                case TextNode text:
                    output.Append(text.Text);
                    break;
                case ActionNode action:
                    output.Append(Format(Evaluate(action.Pipeline, scope)));
                    break;
                case IfNode branch:
                    Execute(Truthy(Evaluate(branch.Condition, scope)) ? branch.Then : branch.Else, scope, output);
                    break;
                case RangeNode range:
                    if (Evaluate(range.Pipeline, scope) is IDictionary map)
                    {
                        foreach (var key in map.Keys.Cast<object>().Select(k => k.ToString()!).Order(StringComparer.Ordinal))
                        {
                            var variables = new Dictionary<string, object?>(scope.Variables) { [range.Key] = key, [range.Value] = map[key] };
                            Execute(range.Body, scope with { Variables = variables }, output);
                        }
                    }

                    break;
            }
        }
    }

    private static string Format(object? value) => value switch
    {
        null => "",
        bool b => b ? "true" : "false",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    private static bool Truthy(object? value) => value switch
    {
        null => false,
        bool b => b,
        string s => s.Length > 0,
        int i => i != 0,
        ICollection c => c.Count > 0,
        _ => true,
    };

    private static object? Evaluate(string pipeline, Scope scope)
    {
        object? piped = null;
        var first = true;
        foreach (var command in SplitTopLevel(pipeline, '|'))
        {
            var operands = Operands(command.Trim());
            var args = operands.Skip(1).Select(o => Operand(o, scope)).ToList();
            if (!first)
            {
                args.Add(piped);
            }

            piped = IsFunction(operands[0]) ? Call(operands[0], args) : args.Count == 0 ? Operand(operands[0], scope) : throw new FormatException($"cannot apply {operands[0]}");
            first = false;
        }

        return piped;
    }

    private static bool IsFunction(string word) => char.IsLetter(word[0]);

    private static object? Operand(string operand, Scope scope)
    {
        if (operand.StartsWith('(') && operand.EndsWith(')'))
        {
            return Evaluate(operand[1..^1], scope);
        }

        if (operand.StartsWith('"'))
        {
            return operand[1..^1].Replace("\\\"", "\"", StringComparison.Ordinal);
        }

        if (int.TryParse(operand, CultureInfo.InvariantCulture, out var number))
        {
            return number;
        }

        if (operand.StartsWith('$'))
        {
            return scope.Variables.TryGetValue(operand, out var variable) ? variable : throw new FormatException($"undefined variable {operand}");
        }

        if (operand.StartsWith('.'))
        {
            object? current = scope.Root;
            foreach (var field in operand[1..].Split('.'))
            {
                current = current is IDictionary map && map.Contains(field) ? map[field] : null;
            }

            return current;
        }

        throw new FormatException($"unknown operand {operand}");
    }

    private static object? Call(string function, List<object?> args) => function switch
    {
        "quote" => "\"" + Format(args[0]).Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"",
        "default" => Truthy(args[1]) ? args[1] : args[0],
        "required" => Truthy(args[1]) ? args[1] : throw new InvalidOperationException((string)args[0]!),
        "not" => !Truthy(args[0]),
        "b64enc" => Convert.ToBase64String(Encoding.UTF8.GetBytes(Format(args[0]))),
        "printf" => Printf((string)args[0]!, args.Skip(1).ToList()),
        "toYaml" => new SerializerBuilder().Build().Serialize(args[0]).TrimEnd('\n'),
        "indent" => Indent(Format(args[1]), (int)args[0]!),
        "nindent" => "\n" + Indent(Format(args[1]), (int)args[0]!),
        _ => throw new NotSupportedException($"function {function} is outside the subset this check renders"),
    };

    private static string Printf(string format, List<object?> args)
    {
        var result = new StringBuilder();
        var next = 0;
        for (var i = 0; i < format.Length; i++)
        {
            if (format[i] == '%' && i + 1 < format.Length && format[i + 1] is 's' or 'd' or 'v')
            {
                result.Append(Format(args[next++]));
                i++;
            }
            else
            {
                result.Append(format[i]);
            }
        }

        return result.ToString();
    }

    private static string Indent(string text, int spaces) =>
        string.Join('\n', text.Split('\n').Select(line => new string(' ', spaces) + line));

    /// <summary>Splits on <paramref name="separator"/> outside quotes and parentheses.</summary>
    private static List<string> SplitTopLevel(string text, char separator)
    {
        var parts = new List<string>();
        var depth = 0;
        var quoted = false;
        var start = 0;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (c == '"' && (i == 0 || text[i - 1] != '\\'))
            {
                quoted = !quoted;
            }
            else if (!quoted && c == '(')
            {
                depth++;
            }
            else if (!quoted && c == ')')
            {
                depth--;
            }
            else if (!quoted && depth == 0 && c == separator)
            {
                parts.Add(text[start..i]);
                start = i + 1;
            }
        }

        parts.Add(text[start..]);
        return parts;
    }

    /// <summary>The operands of one command: words, quoted strings and parenthesised pipelines.</summary>
    private static List<string> Operands(string command)
    {
        var operands = new List<string>();
        var i = 0;
        while (i < command.Length)
        {
            if (command[i] == ' ')
            {
                i++;
                continue;
            }

            var start = i;
            if (command[i] == '"')
            {
                i++;
                while (command[i] != '"' || command[i - 1] == '\\')
                {
                    i++;
                }

                i++;
            }
            else if (command[i] == '(')
            {
                var depth = 0;
                do
                {
                    depth += command[i] == '(' ? 1 : command[i] == ')' ? -1 : 0;
                    i++;
                }
                while (depth > 0);
            }
            else
            {
                while (i < command.Length && command[i] != ' ')
                {
                    i++;
                }
            }

            operands.Add(command[start..i]);
        }

        return operands;
    }
}
