using Conveyor.Api.Http;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Pipelines;

namespace Conveyor.UnitTests;

public sealed class PipelineValidatorTests
{
    private static PipelineSpec Pipeline(params StepSpec[] steps) => new() { Name = "p", ResourceType = "t", Steps = [.. steps] };

    private static StepSpec Step(string id, params string[]? deps) => new()
    {
        Id = id,
        Driver = "d",
        DependsOn = deps is null ? [] : [.. deps],
        DeclaredDependsOn = deps is not null,
    };

    [Fact]
    public void Steps_without_dependsOn_run_in_declaration_order()
    {
        var p = Pipeline(Step("1", null), Step("2", null), Step("3", null));
        PipelineValidator.ValidateAndNormalize(p);
        Assert.Equal([[], ["1"], ["2"]], p.Steps.Select(s => s.DependsOn));
    }

    [Fact]
    public void Declared_dependencies_are_kept_as_a_dag()
    {
        var p = Pipeline(Step("a", []), Step("b", "a"), Step("c", "a"), Step("d", "b", "c"));
        PipelineValidator.ValidateAndNormalize(p);
        Assert.Equal(["b", "c"], p.Steps[3].DependsOn);
        Assert.Empty(p.Steps[0].DependsOn);
    }

    [Fact]
    public void Steps_without_ids_get_their_position()
    {
        var p = Pipeline(new StepSpec { Driver = "a" }, new StepSpec { Driver = "b" });
        PipelineValidator.ValidateAndNormalize(p);
        Assert.Equal(["1", "2"], p.Steps.Select(s => s.Id));
    }

    [Fact]
    public void A_cycle_is_reported_as_a_closed_path()
    {
        var p = Pipeline(Step("a", "c"), Step("b", "a"), Step("c", "b"), Step("x", []));
        var ex = Assert.Throws<ConveyorValidationException>(() => PipelineValidator.ValidateAndNormalize(p));
        Assert.Matches("dependency cycle: (a -> b -> c -> a|b -> c -> a -> b|c -> a -> b -> c)", ex.Message);
    }

    [Fact]
    public void A_self_dependency_is_a_cycle()
    {
        var ex = Assert.Throws<ConveyorValidationException>(() => PipelineValidator.ValidateAndNormalize(Pipeline(Step("a", "a"))));
        Assert.Contains("a -> a", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_error_is_reported_at_once()
    {
        var p = new PipelineSpec
        {
            Name = "Bad Name",
            ResourceType = "",
            Steps = [Step("1", "9"), Step("1", []), new StepSpec { Id = "3", Driver = "", Retry = new RetryPolicy { MaxAttempts = 0, Jitter = 2 } }],
        };
        var ex = Assert.Throws<ConveyorValidationException>(() => PipelineValidator.ValidateAndNormalize(p));
        Assert.Equal(
            ["name", "resource", "steps[0].dependsOn", "steps[1].id", "steps[2].driver", "steps[2].retry.jitter", "steps[2].retry.maxAttempts"],
            ex.Errors.Keys.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void A_long_chain_validates_without_recursion_limits()
    {
        var steps = Enumerable.Range(0, 5000).Select(i => Step($"s{i}", i == 0 ? [] : [$"s{i - 1}"])).ToArray();
        PipelineValidator.ValidateAndNormalize(Pipeline(steps));
        Assert.Equal("s4998", steps[^1].DependsOn.Single());
    }

    [Theory]
    [InlineData("30s", 30_000)]
    [InlineData("250ms", 250)]
    [InlineData("1h30m", 5_400_000)]
    [InlineData("1.5s", 1_500)]
    [InlineData("2d", 172_800_000)]
    [InlineData("00:01:00", 60_000)]
    [InlineData("-5s", -5_000)]
    public void Durations_parse(string text, double ms)
    {
        Assert.True(Durations.TryParse(text, out var value));
        Assert.Equal(ms, value.TotalMilliseconds);
    }

    [Theory]
    [InlineData("")]
    [InlineData("soon")]
    [InlineData("5")]
    [InlineData("5x")]
    [InlineData("s5")]
    public void Non_durations_are_rejected(string text) => Assert.False(Durations.TryParse(text, out _));

    [Theory]
    [InlineData(90_500, "1m30s500ms")]
    [InlineData(0, "0s")]
    [InlineData(7_200_000, "2h")]
    public void Durations_format_round_trip(double ms, string text)
    {
        Assert.Equal(text, Durations.Format(TimeSpan.FromMilliseconds(ms)));
        Assert.True(Durations.TryParse(text, out var back));
        Assert.Equal(ms, back.TotalMilliseconds);
    }
}
