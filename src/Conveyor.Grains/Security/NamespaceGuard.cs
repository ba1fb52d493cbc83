using Conveyor.Grains.Abstractions;

namespace Conveyor.Grains.Security;

/// <summary>
/// The one check every path that starts a run makes: the run's namespace is live (not deleted, not being deleted).
/// A deleted namespace is tombstoned before its runs are cancelled, so nothing starts in it once its deletion began.
/// </summary>
internal static class NamespaceGuard
{
    /// <summary>Whether <paramref name="ns"/> exists and is not being deleted; <c>default</c> always is, without a call.</summary>
    public static Task<bool> IsNamespaceActiveAsync(this IGrainFactory grains, string ns)
    {
        ArgumentNullException.ThrowIfNull(grains);
        return ns == Names.DefaultNamespace
            ? Task.FromResult(true)
            : grains.GetGrain<INamespaceRegistryGrain>(INamespaceRegistryGrain.Id).ExistsAsync(ns);
    }

    /// <summary>Throws <see cref="ConveyorNotFoundException"/> unless <paramref name="ns"/> is live.</summary>
    /// <remarks>Called from grains too, so it keeps the caller's scheduler (no <c>ConfigureAwait(false)</c>).</remarks>
    public static async Task EnsureNamespaceActiveAsync(this IGrainFactory grains, string ns)
    {
        if (!await grains.IsNamespaceActiveAsync(ns))
        {
            throw new ConveyorNotFoundException($"namespace {Names.Truncate(ns)} not found");
        }
    }
}
