using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Antlr4.Runtime;
using Antlr4.Runtime.Tree;
using Cel;
using Cel.Internal;
using Conveyor.Grains.Runs.Engine;

namespace Conveyor.Grains.Runs.Conditions;

/// <summary>
/// Step conditions in CEL (the <c>Cel</c> package), sandboxed. An expression is checked when its pipeline is saved
/// (<see cref="Check"/>) and compiled once per silo (cached by its text, so every revision that keeps it shares the
/// program). The sandbox:
/// <list type="bullet">
/// <item>no CLR types: an expression sees only maps, lists, strings, numbers, booleans and null built from JSON, and
/// may not construct messages (<c>google.protobuf.Struct{…}</c>); variables are the six of <see cref="Variables"/>;</item>
/// <item>bounded size: at most <see cref="MaxLength"/> characters and <see cref="MaxNodes"/> syntax nodes, and a
/// comprehension (<c>all</c>, <c>exists</c>, <c>exists_one</c>, <c>map</c>, <c>filter</c>) may not contain another,
/// so evaluation is linear in the inputs;</item>
/// <item>bounded inputs: an evaluation reads at most <see cref="MaxValues"/> JSON values and <see cref="MaxChars"/>
/// characters of strings from its scope (values are converted only when the expression touches them), else it fails;</item>
/// <item><c>matches</c> uses a non-backtracking regular expression engine with a time limit.</item>
/// </list>
/// </summary>
internal sealed class CelConditions : IConditionEvaluator
{
    /// <summary>Longest expression.</summary>
    public const int MaxLength = 1024;

    /// <summary>Most syntax nodes of an expression.</summary>
    public const int MaxNodes = 256;

    /// <summary>Most JSON values one evaluation may read from its scope.</summary>
    public const int MaxValues = 10_000;

    /// <summary>Most characters of strings one evaluation may read from its scope.</summary>
    public const int MaxChars = 256 * 1024;

    /// <summary>Most compiled programs kept; the cache starts over beyond it.</summary>
    public const int MaxCached = 4096;

    /// <summary>The variables an expression may name.</summary>
    public static readonly IReadOnlyList<string> Variables = ["params", "inputs", "steps", "resource", "trigger", "run"];

    private static readonly HashSet<string> Comprehensions = new(StringComparer.Ordinal) { "all", "exists", "exists_one", "map", "filter" };
    private static readonly TimeSpan RegexLimit = TimeSpan.FromMilliseconds(100);

    private readonly CelEnvironment _environment = CreateEnvironment();
    private readonly ConcurrentDictionary<string, CelProgramDelegate> _programs = new(StringComparer.Ordinal);
    private readonly Lock _compiling = new();

    /// <summary>One evaluator per process: compiled programs are shared by every run of the silo.</summary>
    public static CelConditions Shared { get; } = new();

    /// <summary>Why <paramref name="expression"/> cannot be a condition, or null when it can.</summary>
    public static string? Check(string expression)
    {
        ArgumentNullException.ThrowIfNull(expression);
        if (string.IsNullOrWhiteSpace(expression))
        {
            return "the expression is empty";
        }

        if (expression.Length > MaxLength)
        {
            return $"the expression is longer than {MaxLength} characters";
        }

        var (tree, syntax) = Parse(expression);
        if (syntax is not null)
        {
            return syntax;
        }

        var walk = new Walk();
        walk.Visit(tree!, [], 0);
        return walk.Error;
    }

    /// <inheritdoc />
    public ConditionResult Evaluate(string expression, ConditionScope scope)
    {
        ArgumentNullException.ThrowIfNull(expression);
        ArgumentNullException.ThrowIfNull(scope);
        CelProgramDelegate program;
        try
        {
            program = Program(expression);
        }
        catch (ConditionException ex)
        {
            return ConditionResult.Failed(ex.Message);
        }

        var budget = new Budget();
        try
        {
            var result = program(Root(scope, budget));
            return result switch
            {
                bool value => ConditionResult.Of(value),
                null => ConditionResult.Failed("the condition evaluated to null, not a boolean"),
                _ when result.GetType().Name == "CelNoSuchField" => ConditionResult.Failed(result.ToString() ?? "no such field"),
                _ => ConditionResult.Failed($"the condition evaluated to {Describe(result)}, not a boolean"),
            };
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Expected failures of a condition (a missing field, a type mismatch, a budget) are data: the step fails with them.
            return ConditionResult.Failed(ex.Message);
        }
    }

    private CelProgramDelegate Program(string expression)
    {
        if (_programs.TryGetValue(expression, out var cached))
        {
            return cached;
        }

        if (Check(expression) is { } error)
        {
            throw new ConditionException(error);
        }

        var (tree, _) = Parse(expression);
        CelProgramDelegate program;
        // The environment's visitor is not known to be safe for concurrent compiles; compiled programs are.
        lock (_compiling)
        {
            program = _environment.Compile(tree!);
        }

        if (_programs.Count >= MaxCached)
        {
            _programs.Clear();
        }

        _programs[expression] = program;
        return program;
    }

    private static CelEnvironment CreateEnvironment()
    {
        var environment = new CelEnvironment(null, null);
        // The built-in matches backtracks without a limit; this one cannot blow up on a hostile pattern.
        environment.RegisterFunction("matches", [typeof(string), typeof(string)], args => Matches(args[0], args[1]));
        environment.RegisterFunction("matches", [typeof(string)], args => throw new ConditionException("matches needs a string and a pattern"));
        return environment;
    }

    private static bool Matches(object? value, object? pattern)
    {
        if (value is not string text || pattern is not string regex)
        {
            throw new ConditionException("matches needs a string and a pattern");
        }

        try
        {
            return Regex.IsMatch(text, regex, RegexOptions.NonBacktracking | RegexOptions.CultureInvariant, RegexLimit);
        }
        catch (ArgumentException ex)
        {
            throw new ConditionException($"matches: invalid pattern: {ex.Message}");
        }
    }

    private static (CelParser.StartContext? Tree, string? Error) Parse(string expression)
    {
        var errors = new SyntaxErrors();
        var lexer = new CelLexer(new AntlrInputStream(expression));
        lexer.RemoveErrorListeners();
        lexer.AddErrorListener(errors);
        var parser = new CelParser(new CommonTokenStream(lexer));
        parser.RemoveErrorListeners();
        parser.AddErrorListener(errors);
        var tree = parser.start();
        return errors.First is { } error ? (null, error) : (tree, null);
    }

    private static string Describe(object value) => value switch
    {
        string => "a string",
        long or ulong or int => "an int",
        double => "a double",
        object?[] => "a list",
        IDictionary<string, object?> => "a map",
        _ => "a " + value.GetType().Name,
    };

    /// <summary>The variables of one evaluation, converted from the scope only when read.</summary>
    private static LazyMap Root(ConditionScope scope, Budget budget) => new(
        Variables,
        name => name switch
        {
            "params" => budget.Json(scope.Params) ?? new Dictionary<string, object?>(StringComparer.Ordinal),
            "inputs" => new LazyMap(scope.Inputs.Select(i => i.Key).ToList(), id => budget.Json(scope.Inputs.First(i => i.Key == id).Value)),
            "steps" => new LazyMap(scope.StepIds, id => scope.Step(id) is { } step
                ? new LazyMap(["status", "output"], field => field == "status" ? budget.Text(step.Status) : budget.Json(step.Output))
                : null),
            "resource" => new LazyMap(["name", "type", "version", "spec", "metadata"], field => field switch
            {
                "name" => budget.Text(scope.Resource.Name),
                "type" => budget.Text(scope.Resource.Type),
                "version" => (long)scope.Resource.Version,
                "spec" => budget.Json(scope.Resource.Spec),
                _ => budget.Strings(scope.Resource.Metadata),
            }),
            "trigger" => new Dictionary<string, object?>(StringComparer.Ordinal)
            {
                ["type"] = budget.Text(scope.Trigger),
                ["id"] = scope.TriggerId is null ? null : budget.Text(scope.TriggerId),
            },
            _ => new Dictionary<string, object?>(StringComparer.Ordinal)
            {
                ["id"] = scope.RunId.ToString(),
                ["status"] = scope.RunStatus,
                ["pipeline"] = scope.Pipeline,
                ["namespace"] = scope.Namespace,
                ["attempt"] = (long)scope.RunAttempt,
            },
        });

    /// <summary>Counts what an evaluation reads from its scope.</summary>
    private sealed class Budget
    {
        private int _values;
        private int _chars;

        public string Text(string text)
        {
            Count(1, text.Length);
            return text;
        }

        public Dictionary<string, object?> Strings(Dictionary<string, string> map)
        {
            var result = new Dictionary<string, object?>(map.Count, StringComparer.Ordinal);
            foreach (var (key, value) in map)
            {
                Count(1, key.Length + value.Length);
                result[key] = value;
            }

            return result;
        }

        public object? Json(string? json)
        {
            if (json is null)
            {
                return null;
            }

            if (json.Length > MaxChars * 2)
            {
                throw new ConditionException($"a value the condition reads is larger than {MaxChars * 2} characters");
            }

            using var document = JsonDocument.Parse(json);
            return Convert(document.RootElement);
        }

        private object? Convert(JsonElement element)
        {
            Count(1, 0);
            switch (element.ValueKind)
            {
                case JsonValueKind.Object:
                    var map = new Dictionary<string, object?>(StringComparer.Ordinal);
                    foreach (var property in element.EnumerateObject())
                    {
                        Count(0, property.Name.Length);
                        map[property.Name] = Convert(property.Value);
                    }

                    return map;
                case JsonValueKind.Array:
                    var list = new object?[element.GetArrayLength()];
                    var i = 0;
                    foreach (var item in element.EnumerateArray())
                    {
                        list[i++] = Convert(item);
                    }

                    return list;
                case JsonValueKind.String:
                    var text = element.GetString()!;
                    Count(0, text.Length);
                    return text;
                case JsonValueKind.Number:
                    return element.TryGetInt64(out var integer) ? integer : element.GetDouble();
                case JsonValueKind.True:
                    return true;
                case JsonValueKind.False:
                    return false;
                default:
                    return null;
            }
        }

        private void Count(int values, int chars)
        {
            _values += values;
            _chars += chars;
            if (_values > MaxValues || _chars > MaxChars)
            {
                throw new ConditionException(
                    $"the condition reads more than its inputs may hold ({MaxValues} values, {MaxChars} characters of strings)");
            }
        }
    }

    /// <summary>A read-only map whose values are made on first read (the lookup the expression library uses).</summary>
    private sealed class LazyMap(IReadOnlyList<string> keys, Func<string, object?> value) : IDictionary<string, object?>
    {
        private readonly Dictionary<string, object?> _made = new(StringComparer.Ordinal);
        private HashSet<string>? _keys;

        public ICollection<string> Keys => keys.ToList();

        public ICollection<object?> Values => keys.Select(k => this[k]).ToList();

        public int Count => keys.Count;

        public bool IsReadOnly => true;

        public object? this[string key]
        {
            get => TryGetValue(key, out var v) ? v : throw new KeyNotFoundException($"no such key: {key}");
            set => throw new NotSupportedException();
        }

        public bool ContainsKey(string key) => (_keys ??= new HashSet<string>(keys, StringComparer.Ordinal)).Contains(key);

        public bool TryGetValue(string key, out object? v)
        {
            if (_made.TryGetValue(key, out v))
            {
                return true;
            }

            if (!ContainsKey(key))
            {
                v = null;
                return false;
            }

            v = _made[key] = value(key);
            return true;
        }

        public bool Contains(KeyValuePair<string, object?> item) => TryGetValue(item.Key, out var v) && Equals(v, item.Value);

        public void CopyTo(KeyValuePair<string, object?>[] array, int arrayIndex)
        {
            ArgumentNullException.ThrowIfNull(array);
            foreach (var pair in this)
            {
                array[arrayIndex++] = pair;
            }
        }

        public IEnumerator<KeyValuePair<string, object?>> GetEnumerator()
        {
            foreach (var key in keys)
            {
                yield return new KeyValuePair<string, object?>(key, this[key]);
            }
        }

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();

        public void Add(string key, object? value) => throw new NotSupportedException();

        public void Add(KeyValuePair<string, object?> item) => throw new NotSupportedException();

        public bool Remove(string key) => throw new NotSupportedException();

        public bool Remove(KeyValuePair<string, object?> item) => throw new NotSupportedException();

        public void Clear() => throw new NotSupportedException();
    }

    /// <summary>The static checks: size, constructs, nesting of comprehensions and the variables named.</summary>
    private sealed class Walk
    {
        private int _nodes;

        public string? Error { get; private set; }

        public void Visit(IParseTree node, List<string> bound, int depth)
        {
            if (Error is not null)
            {
                return;
            }

            if (++_nodes > MaxNodes)
            {
                Error = $"the expression has more than {MaxNodes} parts";
                return;
            }

            switch (node)
            {
                case CelParser.CreateMessageContext:
                    Error = "the expression may not construct messages";
                    return;
                case CelParser.IdentOrGlobalCallContext ident when ident.LPAREN() is null:
                    var name = ident.IDENTIFIER()?.GetText() ?? "";
                    if (!bound.Contains(name) && !Variables.Contains(name))
                    {
                        Error = $"unknown variable '{name}' (a condition may read {string.Join(", ", Variables)})";
                        return;
                    }

                    break;
                case CelParser.MemberCallContext call when call.IDENTIFIER()?.GetText() is { } method && Comprehensions.Contains(method):
                    if (depth > 0)
                    {
                        Error = $"a comprehension ({method}) may not be nested in another";
                        return;
                    }

                    var args = call.exprList()?.expr() ?? [];
                    if (args.Length != 2 || args[0].GetText() is not { Length: > 0 } variable || !IsIdentifier(variable))
                    {
                        Error = $"{method} takes a variable name and an expression";
                        return;
                    }

                    Visit(call.member(), bound, depth);
                    Visit(args[1], [.. bound, variable], depth + 1);
                    return;
            }

            for (var i = 0; i < node.ChildCount; i++)
            {
                Visit(node.GetChild(i), bound, depth);
            }
        }

        private static bool IsIdentifier(string text) =>
            (char.IsAsciiLetter(text[0]) || text[0] == '_') && text.All(c => char.IsAsciiLetterOrDigit(c) || c == '_');
    }

    private sealed class SyntaxErrors : IAntlrErrorListener<int>, IAntlrErrorListener<IToken>
    {
        public string? First { get; private set; }

        public void SyntaxError(TextWriter output, IRecognizer recognizer, int offendingSymbol, int line, int charPositionInLine, string msg, RecognitionException e) =>
            First ??= Format(charPositionInLine, msg);

        public void SyntaxError(TextWriter output, IRecognizer recognizer, IToken offendingSymbol, int line, int charPositionInLine, string msg, RecognitionException e) =>
            First ??= Format(charPositionInLine, msg);

        private static string Format(int column, string message) =>
            string.Create(CultureInfo.InvariantCulture, $"syntax error at column {column + 1}: {message}");
    }

    /// <summary>A condition that cannot be evaluated (its message is the step's reason).</summary>
    private sealed class ConditionException(string message) : Exception(message);
}
