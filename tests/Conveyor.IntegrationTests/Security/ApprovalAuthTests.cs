using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Conveyor.Api.Security;
using Conveyor.Testing;

namespace Conveyor.IntegrationTests.Security;

/// <summary>Approval gates with authentication on: the record keeps the deciding key, and a gate for admins refuses operators.</summary>
[Collection(SecurityCollection.Name)]
public sealed class ApprovalAuthTests(SecurityFixture fx)
{
    private static string IdOf(string key) => ApiKeys.TryParse(key, out var id, out _) ? id : throw new ArgumentException("not a key", nameof(key));

    private static JsonElement Step(JsonElement run, string id) =>
        run.GetProperty("steps").EnumerateArray().Single(s => s.GetProperty("id").GetString() == id);

    private static async Task<JsonElement> GetRunAsync(HttpClient client, string runId) =>
        await client.GetFromJsonAsync<JsonElement>($"/runs/{runId}");

    [Fact]
    public async Task An_approval_records_the_deciding_key_and_a_gate_for_admins_refuses_an_operator()
    {
        var type = "appr-" + Guid.NewGuid().ToString("N")[..8];
        await fx.AdminPostAsync("/resource-definitions", new { name = type, version = "1", schema = new { type = "object" } });
        await fx.AdminPostAsync("/pipelines", new
        {
            name = type,
            resource = type,
            steps = new object[] { new { id = "qa", type = "approval" }, new { id = "prod", type = "approval", approvers = "admin" } },
        });
        var operatorKey = await fx.CreateKeyAsync("operator", "default");
        var viewerKey = await fx.CreateKeyAsync("viewer", "default");
        using var operatorClient = fx.Client(operatorKey);
        using var viewerClient = fx.Client(viewerKey);
        using var admin = fx.Client(fx.AdminKey);
        var runId = (await fx.AdminPostAsync("/resources", new { name = "web", resource = type, pipeline = type, spec = new { } })).GetProperty("runid").GetString()!;
        await Eventually.TrueAsync(async () => Step(await GetRunAsync(admin, runId), "qa").GetProperty("status").GetString() == "WaitingForApproval", Deadlines.Event, "qa should wait");

        using (var byViewer = await viewerClient.PostAsJsonAsync($"/runs/{runId}/steps/qa/approve", new { }))
        {
            Assert.Equal(HttpStatusCode.Forbidden, byViewer.StatusCode);
        }

        using (var byOperator = await operatorClient.PostAsJsonAsync($"/runs/{runId}/steps/qa/approve", new { comment = "tests green" }))
        {
            Assert.Equal(HttpStatusCode.OK, byOperator.StatusCode);
        }

        var run = await GetRunAsync(admin, runId);
        var qa = Step(run, "qa").GetProperty("approval");
        Assert.Equal(IdOf(operatorKey), qa.GetProperty("by").GetString());
        Assert.Equal("tests green", qa.GetProperty("comment").GetString());
        Assert.Equal("WaitingForApproval", Step(run, "prod").GetProperty("status").GetString());

        using (var operatorOnAdminGate = await operatorClient.PostAsJsonAsync($"/runs/{runId}/steps/prod/approve", new { }))
        {
            Assert.Equal(HttpStatusCode.Forbidden, operatorOnAdminGate.StatusCode);
            var problem = await operatorOnAdminGate.Content.ReadFromJsonAsync<JsonElement>();
            Assert.Equal("urn:conveyor:problem:forbidden", problem.GetProperty("type").GetString());
            Assert.Contains("must be decided by an admin key", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        }

        Assert.Equal("WaitingForApproval", Step(await GetRunAsync(admin, runId), "prod").GetProperty("status").GetString());
        using (var byAdmin = await admin.PostAsJsonAsync($"/runs/{runId}/steps/prod/approve", new { }))
        {
            Assert.Equal(HttpStatusCode.OK, byAdmin.StatusCode);
        }

        await Eventually.TrueAsync(async () => (await GetRunAsync(admin, runId)).GetProperty("status").GetString() == "Succeeded", Deadlines.Event, "the run should succeed");
        Assert.Equal(IdOf(fx.AdminKey), Step(await GetRunAsync(admin, runId), "prod").GetProperty("approval").GetProperty("by").GetString());
    }

    [Fact]
    public async Task Pausing_records_the_key_and_a_viewer_may_neither_pause_nor_resume()
    {
        var type = "pause-" + Guid.NewGuid().ToString("N")[..8];
        await fx.AdminPostAsync("/resource-definitions", new { name = type, version = "1", schema = new { type = "object" } });
        await fx.AdminPostAsync("/pipelines", new { name = type, resource = type, steps = new object[] { new { id = "gate", type = "approval" } } });
        var viewerKey = await fx.CreateKeyAsync("viewer", "default");
        using var viewerClient = fx.Client(viewerKey);
        using var admin = fx.Client(fx.AdminKey);
        var runId = (await fx.AdminPostAsync("/resources", new { name = "web", resource = type, pipeline = type, spec = new { } })).GetProperty("runid").GetString()!;
        await Eventually.TrueAsync(async () => Step(await GetRunAsync(admin, runId), "gate").GetProperty("status").GetString() == "WaitingForApproval", Deadlines.Event, "the gate should wait");

        using (var byViewer = await viewerClient.PostAsJsonAsync($"/runs/{runId}/pause", new { }))
        {
            Assert.Equal(HttpStatusCode.Forbidden, byViewer.StatusCode);
        }

        var paused = await fx.AdminPostAsync($"/runs/{runId}/pause", new { });
        Assert.Equal("Paused", paused.GetProperty("status").GetString());
        Assert.Equal(IdOf(fx.AdminKey), paused.GetProperty("pausedBy").GetString());
        using (var byViewer = await viewerClient.PostAsJsonAsync($"/runs/{runId}/resume", new { }))
        {
            Assert.Equal(HttpStatusCode.Forbidden, byViewer.StatusCode);
        }

        await fx.AdminPostAsync($"/runs/{runId}/cancel", new { });
    }
}
