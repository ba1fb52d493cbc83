using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Runs;
using Conveyor.Grains.Triggers;
using Conveyor.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace Conveyor.IntegrationTests.Security;

/// <summary>
/// A deleted namespace runs nothing: its deletion tombstones it first, then cancels every unfinished run — pending,
/// queued and running — and from then on its schedules, webhooks and triggers start nothing.
/// </summary>
[Collection(HardeningCollection.Name)]
public sealed class NamespaceDeletionTests(HardeningFixture fx)
{
    private const string HookSecret = "a-webhook-secret-of-32-characters!!";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Cascade_cancels_running_and_queued_runs_and_stops_schedules_hooks_and_triggers()
    {
        var http = fx.Open.Http;
        var grains = fx.Open.Services.GetRequiredService<IGrainFactory>();
        var index = fx.Open.Services.GetRequiredService<IRunIndex>();
        var ns = EngineFixture.Unique("gone");
        var prefix = $"/namespaces/{ns}";
        await HardeningFixture.SendAsync(http, HttpMethod.Post, "/namespaces", new { name = ns });
        var type = await HardeningFixture.DefinitionAsync(http, prefix);
        var nobody = EngineFixture.Unique("nobody");
        // One slot: the first run holds it (its driver never answers), the second queues behind it.
        await HardeningFixture.SendAsync(http, HttpMethod.Post, $"{prefix}/pipelines", new
        {
            name = "slow", resource = type, concurrency = 1,
            steps = new[] { new { id = "1", driver = nobody } },
            webhooks = new[] { new { name = "push", secret = HookSecret, resource = new Dictionary<string, string> { ["name"] = "/repository/name" } } },
        });
        await HardeningFixture.SendAsync(http, HttpMethod.Post, $"{prefix}/pipelines", new
        {
            name = "ticker", resource = type,
            steps = new[] { new { id = "1", driver = nobody } },
            schedules = new[] { new { name = "tick", cron = "*/1 * * * * *", resource = "web" } },
        });
        var running = (await HardeningFixture.SendAsync(http, HttpMethod.Post, $"{prefix}/pipelines/slow/runs", new { resource = "web" })).GetProperty("id").GetGuid();
        var queued = (await HardeningFixture.SendAsync(http, HttpMethod.Post, $"{prefix}/pipelines/slow/runs", new { resource = "web" })).GetProperty("id").GetGuid();
        await Eventually.TrueAsync(async () => (await StatusAsync(grains, running)) == RunStatus.Running, Timeout, "the first run holds the slot");
        Assert.Equal(RunStatus.Queued, await StatusAsync(grains, queued));
        await Eventually.TrueAsync(async () => (await index.ListAsync(ns, "ticker", null, null, 10)).RunIds.Count > 0, Timeout, "the schedule fires");

        using (var deleted = await http.DeleteAsync($"/namespaces/{ns}?cascade=true"))
        {
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        }

        // What was cancelled: the running run, the queued one, and every scheduled run.
        foreach (var id in new[] { running, queued })
        {
            var run = await grains.GetGrain<IPipelineRunGrain>(id).GetAsync();
            Assert.Equal(RunStatus.Cancelled, run!.Status);
            Assert.Equal($"namespace {ns} deleted", run.Message);
        }

        // The schedule disarms itself at its next tick; after that nothing can start a run in the namespace.
        var schedule = grains.GetGrain<IScheduleGrain>(Names.PipelineKey(ns, "ticker"));
        await Eventually.TrueAsync(async () => (await schedule.GetLastFiredAsync()).Count == 0, Timeout, "the deleted namespace's schedule disarms");
        var all = await index.ListAsync(ns, null, null, null, 100);
        Assert.Contains(running, all.RunIds);
        Assert.Contains(queued, all.RunIds);
        foreach (var id in all.RunIds)
        {
            Assert.Equal(RunStatus.Cancelled, await StatusAsync(grains, id));
        }

        // Its hooks and triggers start nothing (404), whatever they carry.
        var body = """{"repository":{"name":"web"}}""";
        using var hook = new HttpRequestMessage(HttpMethod.Post, $"/hooks/{ns}/slow/push") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        hook.Headers.Add("X-Hub-Signature-256", "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(HookSecret), Encoding.UTF8.GetBytes(body))));
        using (var delivered = await http.SendAsync(hook))
        {
            await ProblemAssert.IsAsync(delivered, HttpStatusCode.NotFound, "not-found");
        }

        using (var triggered = await http.PostAsJsonAsync($"{prefix}/pipelines/slow/runs", new { resource = "web" }))
        {
            await ProblemAssert.IsAsync(triggered, HttpStatusCode.NotFound, "not-found");
        }

        Assert.Equal(all.RunIds.Count, (await index.ListAsync(ns, null, null, null, 100)).RunIds.Count);
    }

    [Fact]
    public async Task A_schedule_whose_pipeline_is_gone_never_fires_even_when_the_delete_did_not_reach_it()
    {
        // The state a pipeline delete leaves when its sync of the schedules fails: the schedule grain still holds the
        // pipeline, the pipeline grain has none.
        var grains = fx.Open.Services.GetRequiredService<IGrainFactory>();
        var index = fx.Open.Services.GetRequiredService<IRunIndex>();
        var type = await HardeningFixture.DefinitionAsync(fx.Open.Http);
        var pipeline = EngineFixture.Unique("orphan");
        var schedule = grains.GetGrain<IScheduleGrain>(Names.PipelineKey(Names.DefaultNamespace, pipeline));
        await schedule.SyncAsync(new PipelineSpec
        {
            Name = pipeline,
            ResourceType = type,
            Revision = 1,
            Steps = [new StepSpec { Id = "1", Driver = "nobody" }],
            Schedules = [new ScheduleSpec { Name = "tick", Cron = "*/1 * * * * *", Resource = "web" }],
        });
        Assert.NotEmpty(await schedule.GetLastFiredAsync());

        await Eventually.TrueAsync(async () => (await schedule.GetLastFiredAsync()).Count == 0, Timeout, "the orphaned schedule disarms at its first tick");
        Assert.Empty((await index.ListAsync(Names.DefaultNamespace, pipeline, null, null, 10)).RunIds);
    }

    private static async Task<RunStatus?> StatusAsync(IGrainFactory grains, Guid run) =>
        (await grains.GetGrain<IPipelineRunGrain>(run).GetAsync())?.Status;
}
