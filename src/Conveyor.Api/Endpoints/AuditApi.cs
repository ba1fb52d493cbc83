using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Conveyor.Api.Http;
using Conveyor.Api.Security;
using Conveyor.Grains.Abstractions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Conveyor.Api.Endpoints;

/// <summary>A page of audit events.</summary>
public sealed record AuditPageDto
{
    /// <summary>Events, oldest first.</summary>
    [JsonPropertyName("items")] public IReadOnlyList<AuditItemDto> Items { get; init; } = [];

    /// <summary>Pass as <c>after</c> for the next page; null when there is none yet.</summary>
    [JsonPropertyName("nextCursor")] public string? NextCursor { get; init; }
}

/// <summary>An audit event with its position in the stream.</summary>
public sealed record AuditItemDto
{
    /// <summary>Stream sequence: the cursor.</summary>
    [JsonPropertyName("seq")] public ulong Seq { get; init; }

    /// <summary>The event.</summary>
    [JsonPropertyName("event")] public AuditEvent Event { get; init; } = new();
}

/// <summary><c>GET /audit</c>: the audit trail of writes, for admins.</summary>
internal static class AuditApi
{
    private const int DefaultPageSize = 100;
    private const int MaxPageSize = 1000;
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>Maps the route (root only).</summary>
    public static RouteHandlerBuilder MapAuditApi(this IEndpointRouteBuilder routes) =>
        routes.MapGet("/audit", ListAudit).WithTags("Security").WithName("ListAudit")
            .WithSummary("Accepted writes, oldest first: who (API key), what (method, route, path), where (namespace), when, with what status")
            .ForAdmins();

    /// <summary>
    /// GET /audit?namespace=&amp;after=&amp;limit= — events of one namespace (<c>_global</c>: keys and namespaces), or of
    /// all when <c>namespace</c> is absent; a page of at most <c>limit</c> (1–1000, default 100) after the cursor.
    /// </summary>
    public static async Task<Ok<AuditPageDto>> ListAudit(string? @namespace, string? after, int? limit, INatsConnection nats, [AsParameters] ApiContext api)
    {
        if (@namespace is not null && @namespace != "_global")
        {
            Names.Validate(@namespace, "namespace");
        }

        var size = limit ?? DefaultPageSize;
        if (size is < 1 or > MaxPageSize)
        {
            throw new ConveyorValidationException("limit", $"'limit' must be between 1 and {MaxPageSize}");
        }

        ulong cursor = 0;
        if (!string.IsNullOrEmpty(after) && !ulong.TryParse(after, NumberStyles.None, CultureInfo.InvariantCulture, out cursor))
        {
            throw new ConveyorValidationException("after", $"'after' must be a cursor from a previous page (got '{Names.Truncate(after)}')");
        }

        var js = new NatsJSContext(nats);
        INatsJSConsumer consumer;
        try
        {
            consumer = await js.CreateOrUpdateConsumerAsync(ConveyorAudit.Stream, new ConsumerConfig("audit-read-" + Guid.NewGuid().ToString("N"))
            {
                FilterSubject = ConveyorAudit.SubjectPrefix + (@namespace ?? ">"),
                DeliverPolicy = ConsumerConfigDeliverPolicy.ByStartSequence,
                OptStartSeq = cursor + 1,
                AckPolicy = ConsumerConfigAckPolicy.None,
                InactiveThreshold = TimeSpan.FromMinutes(1),
                MemStorage = true,
                NumReplicas = 1,
            }, api.Http.RequestAborted);
        }
        catch (NatsJSApiException ex) when (ex.Error.Code == 404)
        {
            // No write was audited yet: the stream is made by the first.
            return TypedResults.Ok(new AuditPageDto());
        }

        try
        {
            var items = new List<AuditItemDto>();
            var last = cursor;
            var remaining = consumer.Info.NumPending;
            while (items.Count < size && remaining > 0)
            {
                var received = 0;
                await foreach (var msg in consumer.FetchNoWaitAsync<byte[]>(new NatsJSFetchOpts { MaxMsgs = (int)Math.Min((ulong)(size - items.Count), remaining) }, cancellationToken: api.Http.RequestAborted))
                {
                    if (msg.Metadata is not { } metadata)
                    {
                        continue;
                    }

                    received++;
                    last = metadata.Sequence.Stream;
                    remaining = metadata.NumPending;
                    if (msg.Data is { Length: > 0 } data && JsonSerializer.Deserialize<AuditEvent>(data, Json) is { } audit)
                    {
                        items.Add(new AuditItemDto { Seq = last, Event = audit });
                    }
                }

                if (received == 0)
                {
                    break;
                }
            }

            return TypedResults.Ok(new AuditPageDto { Items = items, NextCursor = last == cursor ? after : last.ToString(CultureInfo.InvariantCulture) });
        }
        finally
        {
            try
            {
                await js.DeleteConsumerAsync(ConveyorAudit.Stream, consumer.Info.Name, CancellationToken.None);
            }
            catch (NatsJSApiException)
            {
                // Ephemeral: the server removes it on its own once inactive.
            }
        }
    }
}
