using Conveyor.Api.Http;
using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;

namespace Conveyor.UnitTests;

/// <summary>A step's free-text name cannot break out of its Mermaid label.</summary>
public sealed class RunGraphTests
{
    [Fact]
    public void Mermaid_labels_escape_quotes_angle_brackets_ampersands_hashes_and_line_breaks()
    {
        const string Name = "build\"]\nclick a \"javascript:alert(1)\"\r\n<img src=x onerror=alert(1)> & #quot;";
        var run = new RunState
        {
            RunId = Guid.NewGuid(),
            Plan = new RunPlan { Pipeline = new PipelineSpec { Name = "p", Steps = [new StepSpec { Id = "a", Name = Name, Driver = "d" }] } },
            Steps = [new StepState { Id = "a", Status = StepStatus.Pending }],
        };

        var mermaid = RunGraph.Mermaid(run);
        var label = mermaid.Split('\n').Single(l => l.Contains(":::pending", StringComparison.Ordinal));
        Assert.Equal(
            "  s0[\"a: build#quot;] click a #quot;javascript:alert(1)#quot;  #lt;img src=x onerror=alert(1)#gt; #amp; #35;quot;<br/>Pending\"]:::pending",
            label);
        Assert.DoesNotContain("<img", mermaid, StringComparison.Ordinal);
        Assert.Equal(mermaid.Split('\n').Length, mermaid.Count(c => c == '\n') + 1);
        Assert.DoesNotContain("click", mermaid.Split('\n').Where(l => !l.Contains(":::pending", StringComparison.Ordinal)));
    }
}
