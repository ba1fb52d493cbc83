using System.Net.Http.Headers;
using System.Threading.Channels;
using Conveyor.Grains.Abstractions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Conveyor.Grains.Events;

/// <summary>
/// Delivers CDEvents to <see cref="CDEventsOptions.HttpSinkUrl"/> in the background: a bounded queue (full: the event
/// is dropped for the sink, with a warning; it stays in JetStream), one POST at a time in CloudEvents structured mode,
/// <see cref="CDEventsOptions.HttpSinkMaxAttempts"/> tries with a short backoff. A slow or dead sink delays only the
/// sink's own queue, never a run.
/// </summary>
internal sealed partial class CDEventHttpSink : BackgroundService
{
    private readonly CDEventsOptions _options;
    private readonly ILogger<CDEventHttpSink> _logger;
    private readonly Channel<(string Id, byte[] Body)>? _queue;
    private readonly HttpClient? _http;
    private long _delivered;
    private long _dropped;

    /// <summary>Creates the sink; without a URL it accepts nothing and does nothing.</summary>
    public CDEventHttpSink(IOptions<CDEventsOptions> options, ILogger<CDEventHttpSink> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        _logger = logger;
        if (_options.HttpSinkUrl is not null)
        {
            _queue = Channel.CreateBounded<(string Id, byte[] Body)>(new BoundedChannelOptions(_options.HttpSinkQueueCapacity)
            {
                // Wait mode only makes TryWrite report a full queue; nothing ever waits on it.
                FullMode = BoundedChannelFullMode.Wait,
                SingleReader = true,
            });
            _http = new HttpClient { Timeout = _options.HttpSinkTimeout };
        }
    }

    /// <summary>Events the sink accepted (2xx).</summary>
    public long Delivered => Interlocked.Read(ref _delivered);

    /// <summary>Events given up on (queue full, or every attempt failed).</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Queues an event (its id and CloudEvent JSON) for the sink; never waits.</summary>
    public void Enqueue(string id, byte[] body)
    {
        if (_queue is not null && !_queue.Writer.TryWrite((id, body)))
        {
            Interlocked.Increment(ref _dropped);
            LogQueueFull(_logger, id);
        }
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (_queue is null || _http is null)
        {
            return;
        }

        try
        {
            await foreach (var e in _queue.Reader.ReadAllAsync(stoppingToken).ConfigureAwait(false))
            {
                await DeliverAsync(e, stoppingToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutting down: what is still queued stays in JetStream.
        }
    }

    /// <inheritdoc />
    public override void Dispose()
    {
        _http?.Dispose();
        base.Dispose();
    }

    private async Task DeliverAsync((string Id, byte[] Body) e, CancellationToken stoppingToken)
    {
        for (var attempt = 1; attempt <= _options.HttpSinkMaxAttempts; attempt++)
        {
            try
            {
                using var content = new ByteArrayContent(e.Body);
                content.Headers.ContentType = new MediaTypeHeaderValue("application/cloudevents+json") { CharSet = "utf-8" };
                using var response = await _http!.PostAsync(_options.HttpSinkUrl, content, stoppingToken).ConfigureAwait(false);
                if (response.IsSuccessStatusCode)
                {
                    Interlocked.Increment(ref _delivered);
                    return;
                }

                LogRejected(_logger, e.Id, (int)response.StatusCode, attempt);
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                LogFailed(_logger, ex, e.Id, attempt);
            }

            if (attempt < _options.HttpSinkMaxAttempts)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(200 * (1 << (attempt - 1))), stoppingToken).ConfigureAwait(false);
            }
        }

        Interlocked.Increment(ref _dropped);
        LogGaveUp(_logger, e.Id, _options.HttpSinkMaxAttempts);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "CDEvent {EventId} not queued for the HTTP sink: its queue is full")]
    private static partial void LogQueueFull(ILogger logger, string eventId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "HTTP sink answered {Status} to CDEvent {EventId} (attempt {Attempt})")]
    private static partial void LogRejected(ILogger logger, string eventId, int status, int attempt);

    [LoggerMessage(Level = LogLevel.Warning, Message = "POST of CDEvent {EventId} to the HTTP sink failed (attempt {Attempt})")]
    private static partial void LogFailed(ILogger logger, Exception exception, string eventId, int attempt);

    [LoggerMessage(Level = LogLevel.Warning, Message = "CDEvent {EventId} dropped for the HTTP sink after {Attempts} attempts")]
    private static partial void LogGaveUp(ILogger logger, string eventId, int attempts);
}
