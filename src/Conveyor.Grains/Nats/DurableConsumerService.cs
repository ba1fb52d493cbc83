using Microsoft.Extensions.Logging;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Conveyor.Grains.Nats;

/// <summary>
/// A per-silo reader of a shared durable JetStream consumer: it starts when the silo becomes active, (re)creates the
/// consumer and consumes from it, backs off (200 ms doubling to 5 s) when NATS fails, and on silo stop cancels and
/// waits for the derived class to drain what it took.
/// </summary>
internal abstract partial class DurableConsumerService(INatsConnection connection, ILogger logger) : SiloBackgroundLoop
{
    /// <summary>Stream the consumer reads.</summary>
    protected abstract string StreamName { get; }

    /// <summary>The durable consumer's configuration.</summary>
    protected abstract ConsumerConfig CreateConsumerConfig();

    /// <summary>
    /// Options of a continuous consume of at most <paramref name="maxMessages"/> buffered messages. Pull requests
    /// expire after 10 s with a heartbeat every 2 s (the client's defaults are 30 s and 15 s): when the server that
    /// leads the consumer dies, its pending pull dies with it, and the client notices only by missed heartbeats.
    /// </summary>
    public static NatsJSConsumeOpts ConsumeOpts(int maxMessages) => new()
    {
        MaxMsgs = maxMessages,
        Expires = TimeSpan.FromSeconds(10),
        IdleHeartbeat = TimeSpan.FromSeconds(2),
    };

    /// <summary>Consumes until cancelled or NATS fails; must finish what it took before returning.</summary>
    protected abstract Task ConsumeAsync(NatsJSContext js, INatsJSConsumer consumer, CancellationToken cancellationToken);

    /// <inheritdoc />
    protected override async Task RunAsync(CancellationToken cancellationToken)
    {
        var js = new NatsJSContext(connection);
        var delay = TimeSpan.FromMilliseconds(200);
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                var consumer = await js.CreateOrUpdateConsumerAsync(StreamName, CreateConsumerConfig(), cancellationToken).ConfigureAwait(false);
                delay = TimeSpan.FromMilliseconds(200);
                await ConsumeAsync(js, consumer, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                LogConsumeFailed(logger, ex, GetType().Name, delay);
                try
                {
                    await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(5).Ticks));
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Service} failed; retrying in {Delay}")]
    private static partial void LogConsumeFailed(ILogger logger, Exception exception, string service, TimeSpan delay);
}
