using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;
using Newtonsoft.Json.Linq;
using NJsonSchema;
using NJsonSchema.Validation;

namespace Conveyor.Grains.Resources;

/// <summary>
/// Keeps a schema's regular expressions from pinning a core: NJsonSchema runs <c>pattern</c> and
/// <c>patternProperties</c> with the backtracking engine and no match timeout, so <c>^(a+)+$</c> against forty
/// <c>a</c>s and a <c>!</c> never ends.
/// </summary>
/// <remarks>
/// <para>
/// <c>pattern</c> is taken out of the compiled schema (<see cref="Strip"/>) and matched here instead, with
/// <see cref="RegexOptions.NonBacktracking"/> (linear in the input) when the expression allows it, otherwise with a
/// match timeout. <c>patternProperties</c> stays with NJsonSchema, which decides which properties it covers; each of
/// its expressions is first matched here against the object's property names with the same engine and a timeout, so
/// NJsonSchema's own run of the same match is known to end just as fast. Every match of one validation shares
/// <see cref="Budget"/>; a match that times out or a validation that spends its budget fails the value with
/// <see cref="PatternTooSlowException"/> (a 400 naming the field), never a stuck grain turn.
/// </para>
/// </remarks>
internal static class BoundedPatterns
{
    /// <summary>Longest one match may run.</summary>
    public static readonly TimeSpan MatchTimeout = TimeSpan.FromMilliseconds(100);

    /// <summary>Regular-expression time one validation may spend in total.</summary>
    public static readonly TimeSpan Budget = TimeSpan.FromMilliseconds(500);

    private const int MaxCached = 1024;
    private static readonly ConditionalWeakTable<JsonSchema, string> Stripped = [];
    private static readonly ConcurrentDictionary<string, Regex> Linear = new(StringComparer.Ordinal);
    private static readonly ConcurrentDictionary<string, Regex> Backtracking = new(StringComparer.Ordinal);

    /// <summary>Moves every <c>pattern</c> of <paramref name="root"/>'s tree out of NJsonSchema's reach.</summary>
    public static void Strip(JsonSchema root)
    {
        var seen = new HashSet<JsonSchema>(ReferenceEqualityComparer.Instance);
        var pending = new Stack<JsonSchema>();
        pending.Push(root);
        while (pending.Count > 0)
        {
            var schema = pending.Pop();
            if (!seen.Add(schema))
            {
                continue;
            }

            if (!string.IsNullOrEmpty(schema.Pattern))
            {
                Stripped.AddOrUpdate(schema, schema.Pattern);
                schema.Pattern = null;
            }

            foreach (var child in Children(schema))
            {
                pending.Push(child);
            }
        }
    }

    /// <summary>Validates <paramref name="json"/> against <paramref name="schema"/> with every regular expression bounded.</summary>
    /// <exception cref="PatternTooSlowException">A match timed out, or the validation spent its budget.</exception>
    public static ICollection<ValidationError> Validate(JsonSchema schema, string json) => new Validator().Validate(json, schema);

    private static IEnumerable<JsonSchema> Children(JsonSchema schema)
    {
        if (schema.Reference is { } reference)
        {
            yield return reference;
        }

        foreach (var property in schema.Properties.Values)
        {
            yield return property;
        }

        foreach (var property in schema.PatternProperties.Values)
        {
            yield return property;
        }

        foreach (var definition in schema.Definitions.Values)
        {
            yield return definition;
        }

        foreach (var list in new[] { schema.AllOf, schema.AnyOf, schema.OneOf, schema.Items })
        {
            foreach (var item in list)
            {
                yield return item;
            }
        }

        foreach (var single in new[] { schema.Item, schema.Not, schema.AdditionalPropertiesSchema, schema.AdditionalItemsSchema })
        {
            if (single is not null)
            {
                yield return single;
            }
        }
    }

    private static Regex LinearOrBounded(string pattern)
    {
        if (Linear.TryGetValue(pattern, out var regex))
        {
            return regex;
        }

        try
        {
            regex = new Regex(pattern, RegexOptions.NonBacktracking | RegexOptions.CultureInvariant, MatchTimeout);
        }
        catch (NotSupportedException)
        {
            // Backreferences, lookarounds, atomic groups: only the backtracking engine has them; the timeout bounds it.
            regex = BacktrackingBounded(pattern);
        }

        return Cache(Linear, pattern, regex);
    }

    private static Regex BacktrackingBounded(string pattern) =>
        Backtracking.TryGetValue(pattern, out var regex) ? regex : Cache(Backtracking, pattern, new Regex(pattern, RegexOptions.None, MatchTimeout));

    private static Regex Cache(ConcurrentDictionary<string, Regex> cache, string pattern, Regex regex)
    {
        if (cache.Count >= MaxCached)
        {
            cache.Clear();
        }

        return cache.GetOrAdd(pattern, regex);
    }

    /// <summary>One validation: NJsonSchema's walk, with the stripped patterns matched here under one time budget.</summary>
    private sealed class Validator : JsonSchemaValidator
    {
        private readonly Stopwatch _spent = new();

        protected override ICollection<ValidationError> Validate(JToken token, JsonSchema schema, SchemaType schemaType, string? propertyName, string propertyPath)
        {
            if (token is JObject obj && schema.PatternProperties.Count > 0)
            {
                CheckPropertyNames(obj, schema, propertyPath);
            }

            var errors = base.Validate(token, schema, schemaType, propertyName, propertyPath);
            if (token.Type == JTokenType.String && Stripped.TryGetValue(schema, out var pattern)
                && !Match(LinearOrBounded(pattern), token.Value<string>() ?? "", propertyPath, pattern))
            {
                errors.Add(new ValidationError(ValidationErrorKind.PatternMismatch, propertyName, propertyPath, token, schema));
            }

            return errors;
        }

        /// <summary>Runs NJsonSchema's matches of property names against <c>patternProperties</c> first, bounded.</summary>
        private void CheckPropertyNames(JObject obj, JsonSchema schema, string propertyPath)
        {
            foreach (var property in obj.Properties())
            {
                if (schema.Properties.ContainsKey(property.Name))
                {
                    continue;
                }

                foreach (var key in schema.PatternProperties.Keys)
                {
                    Match(BacktrackingBounded(key), property.Name, string.IsNullOrEmpty(propertyPath) ? property.Name : propertyPath + "." + property.Name, key);
                }
            }
        }

        private bool Match(Regex regex, string input, string path, string pattern)
        {
            if (_spent.Elapsed > Budget)
            {
                throw new PatternTooSlowException(path, pattern);
            }

            _spent.Start();
            try
            {
                return regex.IsMatch(input);
            }
            catch (RegexMatchTimeoutException)
            {
                throw new PatternTooSlowException(path, pattern);
            }
            finally
            {
                _spent.Stop();
            }
        }
    }
}

/// <summary>A schema's regular expression took too long on a value: the value is refused rather than matched forever.</summary>
internal sealed class PatternTooSlowException(string path, string pattern)
    : Exception($"matching the schema's pattern '{Abstractions.Names.Truncate(pattern)}' took too long")
{
    /// <summary>Path of the value (NJsonSchema's form, e.g. <c>a.b</c>).</summary>
    public string Path { get; } = path;
}
