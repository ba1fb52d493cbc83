using Conveyor.Grains.Resources;

namespace Conveyor.UnitTests;

/// <summary>
/// Every regular expression a schema makes the engine run is bounded: a catastrophic <c>pattern</c> or
/// <c>patternProperties</c> refuses the value at once instead of pinning a core. Each validation runs on a worker
/// with a generous deadline, so a regression fails the test instead of hanging it.
/// </summary>
public sealed class SchemaPatternTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);
    private static readonly string Evil = new string('a', 40) + "!";

    private static async Task<Dictionary<string, string[]>> ValidateAsync(string schema, string spec)
    {
        var compiled = await SchemaValidator.CompileAsync(schema);
        var run = Task.Run(() => SchemaValidator.Validate(compiled, spec));
        var finished = await Task.WhenAny(run, Task.Delay(Deadline));
        Assert.True(finished == run, $"validating {spec} against {schema} did not end within {Deadline.TotalSeconds} s");
        return await run;
    }

    [Fact]
    public async Task A_nested_quantifier_pattern_refuses_its_attack_string_at_once()
    {
        var errors = await ValidateAsync("""{"type":"object","properties":{"name":{"type":"string","pattern":"^(a+)+$"}}}""", $$"""{"name":"{{Evil}}"}""");
        Assert.Equal(["pattern mismatch"], errors["spec.name"]);
    }

    [Fact]
    public async Task A_pattern_only_the_backtracking_engine_runs_times_out_into_an_error_of_the_value()
    {
        // A lookahead keeps this off the linear engine; the match timeout bounds it.
        var errors = await ValidateAsync("""{"type":"object","properties":{"name":{"type":"string","pattern":"^(?=(a+)+$)a"}}}""", $$"""{"name":"{{Evil}}"}""");
        Assert.Contains("took too long", Assert.Single(errors["spec.name"]), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_catastrophic_pattern_property_is_bounded_on_property_names()
    {
        var errors = await ValidateAsync("""{"type":"object","patternProperties":{"^(a+)+$":{"type":"string"}}}""", $$"""{"{{Evil}}":"x"}""");
        Assert.Contains("took too long", Assert.Single(errors[$"spec.{Evil}"]), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Patterns_keep_their_meaning_inside_combinators_and_references()
    {
        const string schema = """
            {"type":"object","$defs":{"tag":{"type":"string","pattern":"^v[0-9]+$"}},
             "properties":{"ref":{"anyOf":[{"type":"string","pattern":"^refs/heads/"},{"type":"string","pattern":"^refs/tags/"}]},
                           "tag":{"$ref":"#/$defs/tag"},
                           "labels":{"type":"object","patternProperties":{"^x-":{"type":"integer"}},"additionalProperties":false}}}
            """;
        Assert.Empty(await ValidateAsync(schema, """{"ref":"refs/tags/v1","tag":"v12","labels":{"x-a":1}}"""));
        var errors = await ValidateAsync(schema, """{"ref":"main","tag":"12","labels":{"x-a":"one","y":2}}""");
        Assert.Contains("spec.ref", errors.Keys);
        Assert.Contains("pattern mismatch", errors["spec.tag"]);
        Assert.Contains("spec.labels.x-a", errors.Keys);
        Assert.Contains("spec.labels.y", errors.Keys);
    }
}
