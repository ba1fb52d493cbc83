namespace Conveyor.Client;

/// <content>The end of a run's life: delete it now, read it back from the archive.</content>
public sealed partial class ConveyorClient
{
    /// <summary>
    /// <c>DELETE /runs/{id}</c>: deletes a finished run now (archived first, when the server archives), with its logs
    /// and index entries.
    /// </summary>
    /// <exception cref="ConveyorApiException">404 for an unknown run; 409 for a run that has not ended (cancel it first).</exception>
    public Task DeleteRunAsync(Guid runId, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Delete, "runs/" + runId.ToString("D"), cancellationToken);

    /// <summary><c>GET /archive/runs/{id}</c>: a run retention deleted, as the archive keeps it.</summary>
    /// <exception cref="ConveyorApiException">404 when the archive holds no such run.</exception>
    public Task<ArchivedRun> GetArchivedRunAsync(Guid runId, CancellationToken cancellationToken = default) =>
        SendAsync<object, ArchivedRun>(HttpMethod.Get, "archive/runs/" + runId.ToString("D"), null, null, ClientJsonContext.Default.ArchivedRun, cancellationToken);
}
