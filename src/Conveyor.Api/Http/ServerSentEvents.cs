using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Conveyor.Api.Http;

/// <summary>What every Server-Sent Events response of the API does around its own pump of events.</summary>
internal static class ServerSentEvents
{
    /// <summary>
    /// Sends the headers at once, then runs <paramref name="pump"/> until it returns, the client leaves or the silo
    /// starts draining. A draining silo ends its streams at once rather than holding shutdown open; clients reconnect
    /// (to another silo behind the load balancer) and resume from their last event id.
    /// </summary>
    public static async Task ServeAsync(HttpContext http, Func<HttpResponse, CancellationToken, Task> pump)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentNullException.ThrowIfNull(pump);
        var response = http.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        http.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        var stopping = http.RequestServices?.GetService<IHostApplicationLifetime>()?.ApplicationStopping ?? CancellationToken.None;
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, stopping);
        var aborted = linked.Token;
        try
        {
            // Headers go out now, not with the first event or heartbeat (the original's clients wait up to 15 s
            // otherwise). StartAsync alone only queues them in Kestrel's output; the flush sends them.
            await response.StartAsync(aborted).ConfigureAwait(false);
            await response.Body.FlushAsync(aborted).ConfigureAwait(false);
            await pump(response, aborted).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            // The client left.
        }
        catch (IOException) when (aborted.IsCancellationRequested)
        {
            // The client left mid-write.
        }
    }
}
