using StackExchange.Redis;

namespace Conveyor.Grains.Runs;

/// <summary>
/// Shares Redis <c>WAIT</c> calls among concurrent writers on one connection. <c>WAIT</c> covers every write the
/// connection sent before it, and blocks the connection on the server while it waits, so one <c>WAIT</c> in flight at
/// a time is both enough and the most the connection should carry: writers that finish while one is in flight join
/// the next, which is sent as soon as the current one returns.
/// </summary>
internal sealed class ReplicaWaitBatcher(IServer server, int replicas, TimeSpan timeout)
{
    private readonly Lock _gate = new();
    private TaskCompletionSource<long>? _next;
    private bool _inFlight;

    /// <summary>Replicas that acknowledged a <c>WAIT</c> sent after the caller's write completed.</summary>
    public Task<long> WaitAsync()
    {
        lock (_gate)
        {
            _next ??= new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
            var task = _next.Task;
            if (!_inFlight)
            {
                SendLocked();
            }

            return task;
        }
    }

    private void SendLocked()
    {
        var batch = _next!;
        _next = null;
        _inFlight = true;
        _ = RunAsync(batch);
    }

    private async Task RunAsync(TaskCompletionSource<long> batch)
    {
        try
        {
            var result = await server.ExecuteAsync("WAIT", replicas, (long)timeout.TotalMilliseconds).ConfigureAwait(false);
            batch.SetResult((long)result);
        }
        catch (Exception ex)
        {
            batch.SetException(ex);
        }

        lock (_gate)
        {
            _inFlight = false;
            if (_next is not null)
            {
                SendLocked();
            }
        }
    }
}
