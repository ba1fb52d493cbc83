namespace Conveyor.Testing;

/// <summary>Tears fixtures down in order: the host first, then the servers it was connected to.</summary>
public static class Disposal
{
    /// <summary>Disposes each item that exists, in the order given.</summary>
    public static async Task InOrderAsync(params IAsyncDisposable?[] items)
    {
        ArgumentNullException.ThrowIfNull(items);
        foreach (var item in items)
        {
            if (item is not null)
            {
                await item.DisposeAsync().ConfigureAwait(false);
            }
        }
    }
}
