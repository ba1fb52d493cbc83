using System.Net.Http.Json;
using System.Text.Json;
using Conveyor.Api.Security;
using Conveyor.Testing;

namespace Conveyor.IntegrationTests.Security;

/// <summary>Who did what: runs record the keys that triggered, cancelled and retried them, and every write is an audit event.</summary>
[Collection(HardeningCollection.Name)]
public sealed class AuditTests(HardeningFixture fx)
{
    [Fact]
    public async Task Runs_record_who_triggered_cancelled_and_retried_them_and_each_write_is_an_audit_event()
    {
        using var admin = fx.LockedClient();
        var ns = EngineFixture.Unique("audited");
        await HardeningFixture.SendAsync(admin, HttpMethod.Post, "/namespaces", new { name = ns });
        var prefix = $"/namespaces/{ns}";
        var operatorKey = (await HardeningFixture.SendAsync(admin, HttpMethod.Post, "/keys", new { name = "ops", role = "operator", namespaces = new[] { ns } })).GetProperty("key").GetString()!;
        var operatorId = operatorKey.Split('_')[1];
        var adminId = fx.AdminKey.Split('_')[1];
        using var ops = fx.LockedClient(operatorKey);
        var type = await HardeningFixture.DefinitionAsync(ops, prefix);
        await HardeningFixture.SendAsync(ops, HttpMethod.Post, $"{prefix}/pipelines", new { name = "ship", resource = type, steps = new[] { new { id = "1", driver = EngineFixture.Unique("nobody") } } });

        var run = (await HardeningFixture.SendAsync(ops, HttpMethod.Post, $"{prefix}/pipelines/ship/runs", new { resource = "web" })).GetProperty("id").GetString()!;
        await HardeningFixture.SendAsync(admin, HttpMethod.Post, $"{prefix}/runs/{run}/cancel", null);
        await HardeningFixture.SendAsync(ops, HttpMethod.Post, $"{prefix}/runs/{run}/retry", null);
        var viewed = await admin.GetFromJsonAsync<JsonElement>($"{prefix}/runs/{run}");
        Assert.Equal(operatorId, viewed.GetProperty("triggeredBy").GetString());
        Assert.Equal(adminId, viewed.GetProperty("cancelledBy").GetString());
        Assert.Equal(operatorId, viewed.GetProperty("retriedBy").GetString());

        // A run its resource's creation started records that creator.
        var created = await HardeningFixture.SendAsync(ops, HttpMethod.Post, $"{prefix}/resources", new { name = "api", resource = type, pipeline = "ship", spec = new { } });
        var byResource = await admin.GetFromJsonAsync<JsonElement>($"{prefix}/runs/{created.GetProperty("runid").GetString()}");
        Assert.Equal(operatorId, byResource.GetProperty("triggeredBy").GetString());

        var events = await AuditEventsAsync(ns, expected: 7);
        Assert.All(events, e => Assert.Equal(ns, e.GetProperty("namespace").GetString()));
        Assert.Contains(events, e => e.GetProperty("route").GetString() == "/namespaces/{namespace}/pipelines/{name}/runs"
            && e.GetProperty("keyId").GetString() == operatorId && e.GetProperty("role").GetString() == "operator" && e.GetProperty("status").GetInt32() == 201);
        Assert.Contains(events, e => e.GetProperty("path").GetString() == $"{prefix}/runs/{run}/cancel" && e.GetProperty("keyId").GetString() == adminId);
        Assert.Contains(events, e => e.GetProperty("path").GetString() == $"{prefix}/runs/{run}/retry" && e.GetProperty("keyId").GetString() == operatorId);
        Assert.DoesNotContain(events, e => e.GetProperty("method").GetString() == "GET");
        var keyEvents = await AuditEventsAsync("_global", expected: 1);
        Assert.Contains(keyEvents, e => e.GetProperty("route").GetString()!.TrimEnd('/') == "/keys" && e.GetProperty("keyId").GetString() == adminId);
    }

    /// <summary>The events of one subject (namespace), read through <c>GET /audit</c>, which reads the stream by subject.</summary>
    private async Task<List<JsonElement>> AuditEventsAsync(string subjectSuffix, int expected)
    {
        using var admin = fx.LockedClient();
        var events = new List<JsonElement>();
        await Eventually.TrueAsync(
            async () =>
            {
                var page = await admin.GetFromJsonAsync<JsonElement>($"/audit?namespace={subjectSuffix}&limit=1000");
                events = page.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("event").Clone()).ToList();
                return events.Count >= expected;
            },
            TimeSpan.FromSeconds(30),
            $"at least {expected} audit events on {ConveyorAudit.SubjectPrefix}{subjectSuffix}");

        // Paging: after the last cursor there is nothing more.
        var all = await admin.GetFromJsonAsync<JsonElement>($"/audit?namespace={subjectSuffix}&limit=1");
        var next = await admin.GetFromJsonAsync<JsonElement>($"/audit?namespace={subjectSuffix}&limit=1000&after={all.GetProperty("nextCursor").GetString()}");
        Assert.Equal(events.Count - 1, next.GetProperty("items").GetArrayLength());
        return events;
    }
}
