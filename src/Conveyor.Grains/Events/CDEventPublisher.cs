using System.Text;
using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Nats;
using Conveyor.Nats;
using Microsoft.Extensions.Options;
using NATS.Client.Core;

namespace Conveyor.Grains.Events;

/// <summary>
/// Publishes a run's CDEvents, in order, to the <c>conveyor-events</c> JetStream stream on
/// <c>conveyor.cdevents.{namespace}</c> (with <c>Nats-Msg-Id</c> = the event id, so a re-publish after a crash is
/// de-duplicated), then hands each to the optional HTTP sink, which never makes the caller wait.
/// </summary>
internal sealed class CDEventPublisher(JetStreamPublisher publisher, IOptions<CDEventsOptions> options, CDEventHttpSink sink)
{
    /// <summary>Options in force.</summary>
    public CDEventsOptions Options { get; } = options.Value;

    /// <summary>Publishes <paramref name="events"/>; throws when JetStream did not store all of them.</summary>
    public async Task PublishAsync(IReadOnlyList<OutboxEvent> events, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(events);
        if (events.Count == 0)
        {
            return;
        }

        // Published together (one round trip for a transition's events); JetStream keeps their order per publisher.
        var bodies = new byte[events.Count][];
        var acks = new Task[events.Count];
        for (var i = 0; i < events.Count; i++)
        {
            bodies[i] = CDEvents.ToUtf8(events[i], Options.Source);
            acks[i] = PublishOneAsync(events[i], bodies[i], cancellationToken);
        }

        await Task.WhenAll(acks).ConfigureAwait(false);
        for (var i = 0; i < events.Count; i++)
        {
            sink.Enqueue(events[i].Id, bodies[i]);
        }
    }

    private Task<PublishAck> PublishOneAsync(OutboxEvent e, byte[] body, CancellationToken cancellationToken) =>
        publisher.PublishAsync(
            Subjects.CDEvents(e.Namespace),
            body,
            new NatsHeaders { ["Content-Type"] = "application/cloudevents+json", ["ce-type"] = e.Type, [Headers.MessageId] = e.Id },
            cancellationToken);
}
