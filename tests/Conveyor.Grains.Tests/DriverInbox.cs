using System.Collections.Concurrent;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Conveyor.Grains.Tests;

/// <summary>Stands in for a driver: a durable consumer of one driver's dispatches that acks and keeps every message.</summary>
public static class DriverInbox
{
    /// <summary>Creates the consumer of <paramref name="driver"/> for <paramref name="type"/> and collects what arrives until <paramref name="ct"/> ends.</summary>
    public static async Task<ConcurrentQueue<INatsJSMsg<byte[]>>> StartAsync(NatsConnection nats, string driver, string type, CancellationToken ct)
    {
        var js = new NatsJSContext(nats);
        var consumer = await js.CreateOrUpdateConsumerAsync("messages", new ConsumerConfig(driver)
        {
            FilterSubject = $"drivers.{driver}.resources.{type}",
            AckPolicy = ConsumerConfigAckPolicy.Explicit,
        }, ct);
        var received = new ConcurrentQueue<INatsJSMsg<byte[]>>();
        _ = Task.Run(async () =>
        {
            try
            {
                await foreach (var msg in consumer.ConsumeAsync<byte[]>(cancellationToken: ct))
                {
                    received.Enqueue(msg);
                    await msg.AckAsync(cancellationToken: ct);
                }
            }
            catch (OperationCanceledException)
            {
            }
        }, ct);
        return received;
    }
}
