using Conveyor.Api.Http;
using Conveyor.Api.Security;
using Conveyor.Grains;
using Conveyor.Grains.Security;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Conveyor.UnitTests;

/// <summary>The caps on open log streams and the read rate per key, each answered with a 429 naming its setting.</summary>
public sealed class ReadLimitTests
{
    private static readonly EndpointFilterDelegate Ok = _ => ValueTask.FromResult<object?>("ok");

    private static DefaultEndpointFilterInvocationContext Request(string? key, string method = "GET")
    {
        var http = new DefaultHttpContext();
        http.Request.Method = method;
        if (key is not null)
        {
            http.Items[ConveyorAccess.ItemKey] = new ApiKeyData { Id = key };
        }

        return new DefaultEndpointFilterInvocationContext(http);
    }

    private static ProblemHttpResult AssertTooMany(object? result, string setting)
    {
        var problem = Assert.IsType<ProblemHttpResult>(result);
        Assert.Equal(StatusCodes.Status429TooManyRequests, problem.StatusCode);
        Assert.Equal(setting, problem.ProblemDetails.Extensions["limit"]);
        Assert.Contains(setting, problem.ProblemDetails.Detail, StringComparison.Ordinal);
        return problem;
    }

    [Fact]
    public async Task A_key_holds_at_most_its_streams_and_the_silo_at_most_its_own_until_one_ends()
    {
        var filter = new StreamLimitFilter(Options.Create(new ConveyorLimitsOptions { MaxStreamsPerKey = 2, MaxStreamsPerSilo = 3 }));
        var end = new TaskCompletionSource<object?>(TaskCreationOptions.RunContinuationsAsynchronously);
        EndpointFilterDelegate open = async _ => await end.Task;

        var first = filter.InvokeAsync(Request("a"), open).AsTask();
        var second = filter.InvokeAsync(Request("a"), open).AsTask();
        AssertTooMany(await filter.InvokeAsync(Request("a"), Ok), "Conveyor:Limits:MaxStreamsPerKey");

        var third = filter.InvokeAsync(Request("b"), open).AsTask();
        Assert.Equal(3, filter.Open);
        AssertTooMany(await filter.InvokeAsync(Request("c"), Ok), "Conveyor:Limits:MaxStreamsPerSilo");
        AssertTooMany(await filter.InvokeAsync(Request(null), Ok), "Conveyor:Limits:MaxStreamsPerSilo");

        end.SetResult("done");
        await Task.WhenAll(first, second, third);
        Assert.Equal(0, filter.Open);
        Assert.Equal("ok", await filter.InvokeAsync(Request("a"), Ok));
        Assert.Equal("ok", await filter.InvokeAsync(Request("a"), Ok));
        Assert.Equal(0, filter.Open);
    }

    [Fact]
    public async Task A_stream_that_fails_gives_its_place_back()
    {
        var filter = new StreamLimitFilter(Options.Create(new ConveyorLimitsOptions { MaxStreamsPerKey = 1, MaxStreamsPerSilo = 1 }));
        await Assert.ThrowsAsync<InvalidOperationException>(() => filter.InvokeAsync(Request("a"), _ => throw new InvalidOperationException("gone")).AsTask());
        Assert.Equal(0, filter.Open);
        Assert.Equal("ok", await filter.InvokeAsync(Request("a"), Ok));
    }

    [Fact]
    public async Task A_key_reads_its_burst_then_waits_for_the_rate_while_other_keys_and_writes_are_not_held()
    {
        var time = new FakeTimeProvider();
        var filter = new ReadRateLimitFilter(Options.Create(new ConveyorLimitsOptions { ReadRequestsPerSecond = 2, ReadBurst = 3 }), time);
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal("ok", await filter.InvokeAsync(Request("a"), Ok));
        }

        var refused = Request("a");
        var problem = AssertTooMany(await filter.InvokeAsync(refused, Ok), "Conveyor:Limits:ReadRequestsPerSecond");
        Assert.Equal("urn:conveyor:problem:too-many-requests", problem.ProblemDetails.Type);
        Assert.Equal("1", refused.HttpContext.Response.Headers.RetryAfter.ToString());

        Assert.Equal("ok", await filter.InvokeAsync(Request("b"), Ok));
        Assert.Equal("ok", await filter.InvokeAsync(Request("a", "POST"), Ok));
        Assert.Equal("ok", await filter.InvokeAsync(Request(null), Ok));

        // Half a second refills one request at 2 per second, no more.
        time.Advance(TimeSpan.FromMilliseconds(500));
        Assert.Equal("ok", await filter.InvokeAsync(Request("a"), Ok));
        AssertTooMany(await filter.InvokeAsync(Request("a"), Ok), "Conveyor:Limits:ReadRequestsPerSecond");

        // A long pause refills the burst, never beyond it.
        time.Advance(TimeSpan.FromMinutes(5));
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal("ok", await filter.InvokeAsync(Request("a"), Ok));
        }

        AssertTooMany(await filter.InvokeAsync(Request("a"), Ok), "Conveyor:Limits:ReadRequestsPerSecond");
    }

    [Fact]
    public async Task A_read_rate_of_zero_turns_the_limit_off()
    {
        var filter = new ReadRateLimitFilter(Options.Create(new ConveyorLimitsOptions { ReadRequestsPerSecond = 0, ReadBurst = 1 }), new FakeTimeProvider());
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal("ok", await filter.InvokeAsync(Request("a"), Ok));
        }
    }
}
