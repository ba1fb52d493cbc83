using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Conveyor.Grains.Nats;
using Conveyor.Testing;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Conveyor.IntegrationTests.Lifecycle;

/// <summary>No message loops for ever: results that cannot be applied end in the dead letters, and other runs keep flowing.</summary>
[Collection(LifecycleCollection.Name)]
public sealed class DeadLetterTests(LifecycleFixture fx)
{
    private const string TestHeader = "Test-Id";

    private Task PublishResultAsync(string? runId, string driver, string testId) =>
        PublishAsync(new JsonObject
        {
            ["event"] = "driver.result",
            ["run_id"] = runId,
            ["driverresult"] = new JsonObject { ["success"] = true, ["message"] = "done", ["driver"] = driver },
        }, testId);

    private async Task PublishAsync(JsonObject result, string testId)
    {
        var ack = await new NatsJSContext(fx.NatsClient).PublishAsync(
            "pipelines.driver.result", Encoding.UTF8.GetBytes(result.ToJsonString()), headers: new NatsHeaders { [TestHeader] = testId });
        ack.EnsureSuccess();
    }

    /// <summary>The dead letter carrying <paramref name="testId"/>, or null.</summary>
    private async Task<StoredMessage?> DeadLetterAsync(string testId)
    {
        for (ulong seq = 1; ; seq++)
        {
            var info = await new NatsJSContext(fx.NatsClient).GetStreamAsync("conveyor-deadletter");
            if (seq > info.Info.State.LastSeq)
            {
                return null;
            }

            var message = await StoredMessages.BySequenceAsync(fx.NatsClient, "conveyor-deadletter", seq);
            if (message is not null && message.Headers.TryGetValue(TestHeader, out var id) && id == testId)
            {
                return message;
            }
        }
    }

    [Fact]
    public async Task A_result_for_a_run_whose_record_cannot_be_read_ends_in_the_dead_letters_after_max_deliver_while_other_runs_flow()
    {
        // A run record this version cannot read (a corrupt header), under a fresh run id.
        var broken = Guid.NewGuid();
        var key = $"conveyor:{fx.ServiceId}:run:{broken:N}";
        await fx.Db.HashSetAsync(key, [new("v", "1"), new("h", new byte[] { 0xde, 0xad, 0xbe, 0xef }), new("p", new byte[] { 0x01 })]);
        var testId = Guid.NewGuid().ToString("N");
        await PublishResultAsync(broken.ToString(), "some-driver", testId);

        // Meanwhile another run goes from start to end.
        var (type, driver) = (LifecycleFixture.Unique("flow"), LifecycleFixture.Unique("drv"));
        await fx.DefineAsync(type, new { name = type, resource = type, steps = new[] { new { id = "a", driver, timeout = "5m" } } });
        await using var raw = await RawDriver.StartAsync(fx.Nats.Url, driver, $"drivers.{driver}.resources.{type}");
        var healthy = await fx.CreateResourceAsync(type, "web", type);
        Assert.Equal("Succeeded", (await fx.Host.WaitForRunAsync(healthy, Deadlines.Event)).GetProperty("status").GetString());

        StoredMessage? dead = null;
        await Eventually.TrueAsync(async () => (dead = await DeadLetterAsync(testId)) is not null, Deadlines.Event, "the result reaches the dead letters");
        Assert.Equal("3", dead!.Headers[DeadLetters.DeliveriesHeader].ToString());
        Assert.Equal("pipeline-engine", dead.Headers[DeadLetters.StreamHeader].ToString());
        Assert.Contains("cannot be read", dead.Headers[DeadLetters.ReasonHeader].ToString(), StringComparison.Ordinal);
        Assert.Equal(broken.ToString(), JsonDocument.Parse(dead.Data).RootElement.GetProperty("run_id").GetString());
        // Gone from the work queue: nothing is delivered again.
        await Eventually.TrueAsync(
            async () => (await new NatsJSContext(fx.NatsClient).GetStreamAsync("pipeline-engine")).Info.State.Messages == 0,
            Deadlines.Event,
            "the work queue is empty");

        // Reading the run says what is wrong; deleting it removes it.
        using (var read = await fx.Host.Http.GetAsync($"/runs/{broken}"))
        {
            Assert.Equal(500, (int)read.StatusCode);
            var problem = await read.Content.ReadFromJsonAsync<JsonElement>();
            Assert.Equal("urn:conveyor:problem:run-unreadable", problem.GetProperty("type").GetString());
            Assert.Contains("cannot be read", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        }

        using (var delete = await fx.Host.Http.DeleteAsync($"/runs/{broken}"))
        {
            Assert.Equal(204, (int)delete.StatusCode);
        }

        Assert.False(await fx.Db.KeyExistsAsync(key));
        Assert.Equal(404, await fx.StatusOfAsync($"/runs/{broken}"));
    }

    [Fact]
    public async Task A_result_that_names_no_run_goes_to_the_dead_letters_at_once()
    {
        var testId = Guid.NewGuid().ToString("N");
        await PublishResultAsync("not-a-run-id", "some-driver", testId);
        StoredMessage? dead = null;
        await Eventually.TrueAsync(async () => (dead = await DeadLetterAsync(testId)) is not null, Deadlines.Event, "the result reaches the dead letters");
        Assert.Equal("1", dead!.Headers[DeadLetters.DeliveriesHeader].ToString());
        Assert.Contains("is not a run id", dead.Headers[DeadLetters.ReasonHeader].ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Results_with_a_null_driverresult_or_run_id_go_to_the_dead_letters_at_once()
    {
        var noResult = Guid.NewGuid().ToString("N");
        await PublishAsync(new JsonObject { ["event"] = "driver.result", ["run_id"] = Guid.NewGuid().ToString(), ["driverresult"] = null }, noResult);
        var noRun = Guid.NewGuid().ToString("N");
        await PublishResultAsync(null, "some-driver", noRun);

        StoredMessage? dead = null;
        await Eventually.TrueAsync(async () => (dead = await DeadLetterAsync(noResult)) is not null, Deadlines.Event, "the result without driverresult reaches the dead letters");
        Assert.Equal("1", dead!.Headers[DeadLetters.DeliveriesHeader].ToString());
        Assert.Contains("without its driverresult", dead.Headers[DeadLetters.ReasonHeader].ToString(), StringComparison.Ordinal);
        await Eventually.TrueAsync(async () => (dead = await DeadLetterAsync(noRun)) is not null, Deadlines.Event, "the result without run_id reaches the dead letters");
        Assert.Equal("1", dead!.Headers[DeadLetters.DeliveriesHeader].ToString());
        Assert.Contains("is not a run id", dead.Headers[DeadLetters.ReasonHeader].ToString(), StringComparison.Ordinal);
    }
}
