using System.ComponentModel.DataAnnotations;

namespace Conveyor.Grains.Events;

/// <summary>CDEvents emitted by runs (configuration section <c>Conveyor:CDEvents</c>).</summary>
public sealed class CDEventsOptions
{
    /// <summary>Configuration section.</summary>
    public const string Section = "Conveyor:CDEvents";

    /// <summary>Whether runs emit CDEvents at all (on by default).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>CloudEvents <c>source</c> of every event (a URI reference naming this Conveyor installation).</summary>
    [Required]
    public string Source { get; set; } = "/conveyor";

    /// <summary>
    /// Base URL of the HTTP API as users reach it: events carry <c>url</c> = <c>{BaseUrl}/namespaces/{ns}/runs/{id}</c>; without it, the path alone.
    /// </summary>
    public string? BaseUrl { get; set; }

    /// <summary>How long events stay in the <c>conveyor-events</c> JetStream stream.</summary>
    public TimeSpan Retention { get; set; } = TimeSpan.FromDays(7);

    /// <summary>When set, every event is also POSTed there (CloudEvents structured mode), off the run's path.</summary>
    public Uri? HttpSinkUrl { get; set; }

    /// <summary>Timeout of one POST to the sink.</summary>
    public TimeSpan HttpSinkTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>POSTs of one event before it is dropped (with a warning).</summary>
    [Range(1, 20)]
    public int HttpSinkMaxAttempts { get; set; } = 3;

    /// <summary>Events waiting for the sink; when full, new events for the sink are dropped (with a warning), never waited for.</summary>
    [Range(1, 1_000_000)]
    public int HttpSinkQueueCapacity { get; set; } = 10_000;
}
