using System.Runtime.CompilerServices;
using Conveyor.Grains.Resilience;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;
using Xunit;

namespace Conveyor.UnitTests;

public sealed class TransientRetryTests
{
    private static TransientRetry Retry(int maxRetries) =>
        new TransientFaults(NullLogger<TransientFaults>.Instance, new TransientFaultOptions
        {
            MaxRetryAttempts = maxRetries,
            InitialDelay = TimeSpan.FromMilliseconds(1),
            MaxDelay = TimeSpan.FromMilliseconds(2),
        }).Redis;

    private static RedisConnectionException Transient() => new(ConnectionFailureType.SocketFailure, "gone");

    [Fact]
    public async Task A_transient_fault_is_retried_until_the_call_succeeds()
    {
        var calls = new StrongBox<int>();
        var result = await Retry(4).ExecuteAsync(static (c, _) => ++c.Value <= 2 ? throw Transient() : new ValueTask<int>(c.Value), calls);
        Assert.Equal(3, result);
        Assert.Equal(3, calls.Value);
    }

    [Fact]
    public async Task Retries_stop_after_the_maximum_and_the_last_fault_surfaces()
    {
        var calls = new StrongBox<int>();
        await Assert.ThrowsAsync<RedisConnectionException>(async () => await Retry(3).ExecuteAsync(static (c, _) => { c.Value++; throw Transient(); }, calls));
        Assert.Equal(4, calls.Value); // the call and three retries
    }

    [Fact]
    public async Task A_fault_that_cannot_pass_and_a_cancelled_call_are_not_retried()
    {
        var calls = new StrongBox<int>();
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await Retry(3).ExecuteAsync(
            static (c, _) => { c.Value++; throw new InvalidOperationException("a bug"); }, calls));
        Assert.Equal(1, calls.Value);

        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();
        await Assert.ThrowsAsync<RedisConnectionException>(async () => await Retry(3).ExecuteAsync(
            static (c, _) => { c.Value++; throw Transient(); }, calls, cancelled.Token));
        Assert.Equal(2, calls.Value);
    }

    [Fact]
    public void Delays_double_up_to_the_largest_and_are_jittered_between_half_and_all_of_it()
    {
        var retry = new TransientFaults(NullLogger<TransientFaults>.Instance, new TransientFaultOptions
        {
            InitialDelay = TimeSpan.FromMilliseconds(100),
            MaxDelay = TimeSpan.FromSeconds(2),
        }).Nats;
        foreach (var (n, ceiling) in new[] { (1, 100), (2, 200), (3, 400), (5, 1600), (6, 2000), (40, 2000) })
        {
            for (var i = 0; i < 50; i++)
            {
                var delay = retry.Delay(n).TotalMilliseconds;
                Assert.InRange(delay, ceiling / 2.0, ceiling);
            }
        }
    }
}
