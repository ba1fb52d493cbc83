using Orleans.Runtime;

namespace Conveyor.Grains.Nats;

/// <summary>
/// A loop that runs while the silo is active: started once the silo accepts work (so what it hands to grains can be
/// served), stopped — and waited for — when the silo stops.
/// </summary>
internal abstract class SiloBackgroundLoop : ILifecycleParticipant<ISiloLifecycle>, IDisposable
{
    private readonly CancellationTokenSource _stopping = new();
    private Task? _loop;

    public void Participate(ISiloLifecycle lifecycle)
    {
        ArgumentNullException.ThrowIfNull(lifecycle);
        lifecycle.Subscribe(GetType().Name, ServiceLifecycleStage.Active, StartAsync, StopAsync);
    }

    public void Dispose()
    {
        _stopping.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>The loop itself; it returns when <paramref name="cancellationToken"/> is cancelled.</summary>
    protected abstract Task RunAsync(CancellationToken cancellationToken);

    private Task StartAsync(CancellationToken cancellationToken)
    {
        _loop = Task.Run(() => RunAsync(_stopping.Token), CancellationToken.None);
        return Task.CompletedTask;
    }

    private async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_loop is { } loop)
        {
            await loop.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }
}
