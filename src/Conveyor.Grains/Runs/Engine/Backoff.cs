using Conveyor.Grains.Abstractions;

namespace Conveyor.Grains.Runs.Engine;

/// <summary>How long a failed step waits before its next attempt.</summary>
internal static class Backoff
{
    /// <summary>
    /// Exponential backoff with jitter: initial × multiplier^(n−1), capped by the maximum, then moved by up to ± jitter
    /// of itself. <paramref name="sample"/> is a uniform draw from [0, 1) (0.5 moves nothing), injected so that a
    /// test can fix it.
    /// </summary>
    /// <param name="policy">The step's retry policy.</param>
    /// <param name="attemptsUsed">Attempts made within the current budget (1 after the first failure).</param>
    /// <param name="sample">A uniform draw from [0, 1).</param>
    public static TimeSpan Delay(RetryPolicy policy, int attemptsUsed, double sample)
    {
        var delay = policy.InitialDelay.TotalMilliseconds * Math.Pow(policy.Multiplier, Math.Max(0, attemptsUsed - 1));
        delay = Math.Min(delay, policy.MaxDelay.TotalMilliseconds);
        delay *= 1 + (policy.Jitter * ((sample * 2) - 1));
        return TimeSpan.FromMilliseconds(Math.Max(0, delay));
    }
}
