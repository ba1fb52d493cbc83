using System.Net.Http.Json;
using System.Net.Sockets;
using Conveyor.Testing;

namespace Conveyor.IntegrationTests;

public sealed class RestartTests
{
    [Fact]
    public async Task Silo_restarted_on_the_same_stores_reads_runs_and_resources_back_unchanged()
    {
        await using var nats = await NatsServerProcess.StartNewAsync();
        await using var redis = await RedisServerProcess.StartNewAsync();
        var serviceId = EngineFixture.Unique("restart");
        string runJson, resourceJson, pipelineJson, runId;

        await using (var first = await ConveyorTestHost.StartAsync(nats.Url, redis.ConnectionString, serviceId))
        {
            await first.PostJsonAsync("/resource-definitions", new { name = "app", schema = new { type = "object" } });
            await first.PostJsonAsync("/pipelines", new { name = "ship", resource = "app", steps = new[] { new { id = "1", name = "build", driver = "builder" } } });
            await using var driver = await RawDriver.StartAsync(nats.Url, "builder", "drivers.builder.resources.app");
            var created = await first.PostJsonAsync("/resources", new { name = "web", resource = "app", pipeline = "ship", spec = new { image = "nginx" } });
            runId = created.GetProperty("runid").GetString()!;
            var run = await first.WaitForRunAsync(runId, Deadlines.Event);
            Assert.Equal("Succeeded", run.GetProperty("status").GetString());
            runJson = run.GetRawText();
            resourceJson = (await first.GetJsonAsync("/resources/app/web")).GetRawText();
            pipelineJson = (await first.GetJsonAsync("/pipelines/ship")).GetRawText();
        }

        // Redis is restarted too: what the silo wrote must be in its append-only file, not only in memory.
        await redis.RestartAsync();

        await using var second = await ConveyorTestHost.StartAsync(nats.Url, redis.ConnectionString, serviceId);
        Assert.Equal(runJson, (await second.GetJsonAsync($"/runs/{runId}")).GetRawText());
        Assert.Equal(resourceJson, (await second.GetJsonAsync("/resources/app/web")).GetRawText());
        Assert.Equal(pipelineJson, (await second.GetJsonAsync("/pipelines/ship")).GetRawText());
    }

    [Fact]
    public async Task Single_node_supervises_its_own_nats_and_redis_and_keeps_state_across_restarts()
    {
        var dataDirectory = Directory.CreateTempSubdirectory("conveyor-single-node-").FullName;
        try
        {
            var natsPort = ServerProcess.FindFreePort();
            void Configure(Api.Hosting.ConveyorOptions o)
            {
                o.DataDirectory = dataDirectory;
                o.LocalNatsPort = natsPort;
                o.ServiceId = "single-node";
            }

            await using (var first = await ConveyorTestHost.StartAsync(Configure))
            {
                Assert.True(File.Exists(Path.Combine(dataDirectory, "run", "nats-server.pid")));
                Assert.True(File.Exists(Path.Combine(dataDirectory, "run", "redis-server.pid")));
                await first.PostJsonAsync("/resource-definitions", new { name = "app", description = "kept", schema = new { type = "object" } });
            }

            // Stopping the host stopped both servers (and removed their pid files).
            Assert.False(await CanConnectAsync(natsPort));
            Assert.False(File.Exists(Path.Combine(dataDirectory, "run", "nats-server.pid")));
            Assert.True(Directory.Exists(Path.Combine(dataDirectory, "nats", "jetstream")));
            Assert.NotEmpty(Directory.EnumerateFiles(Path.Combine(dataDirectory, "redis"), "*", SearchOption.AllDirectories));

            await using var second = await ConveyorTestHost.StartAsync(Configure);
            var definition = await second.GetJsonAsync("/resource-definitions/app");
            Assert.Equal("kept", definition.GetProperty("description").GetString());
        }
        finally
        {
            Directory.Delete(dataDirectory, recursive: true);
        }
    }

    [Fact]
    public async Task Run_waiting_in_backoff_when_its_silo_stops_is_resumed_by_the_next_silo_untouched()
    {
        await using var nats = await NatsServerProcess.StartNewAsync();
        await using var redis = await RedisServerProcess.StartNewAsync();
        var serviceId = EngineFixture.Unique("backoff");
        var settings = new Dictionary<string, string?> { ["Conveyor:Runs:KeepAlivePeriod"] = "00:00:02" };
        var first = await ConveyorTestHost.StartAsync(nats.Url, redis.ConnectionString, serviceId, settings);
        await using var driver = await RawDriver.StartAsync(
            nats.Url,
            "flaky",
            "drivers.flaky.resources.app",
            m => m.GetProperty("attempt").GetInt32() == 1 ? (false, "first try fails", null) : (true, "second try works", null));
        string runId;
        try
        {
            await first.PostJsonAsync("/resource-definitions", new { name = "app", schema = new { type = "object" } });
            await first.PostJsonAsync("/pipelines", new
            {
                name = "p",
                resource = "app",
                steps = new[] { new { id = "1", driver = "flaky", retry = new { maxAttempts = 2, initialDelay = "4s", jitter = 0.0 } } },
            });
            runId = (await first.PostJsonAsync("/resources", new { name = "web", resource = "app", pipeline = "p", spec = new { } })).GetProperty("runid").GetString()!;
            await Eventually.TrueAsync(
                async () => (await first.GetJsonAsync($"/runs/{runId}")).GetProperty("steps")[0].GetProperty("status").GetString() == "Retrying",
                Deadlines.Event,
                "the step waits in backoff");
        }
        finally
        {
            await first.DisposeAsync();
        }

        // Nobody asks for the run: only its durable reminder can bring it back on the new silo.
        await using var second = await ConveyorTestHost.StartAsync(nats.Url, redis.ConnectionString, serviceId, settings);
        await Eventually.TrueAsync(() => driver.Received.Count == 2, Deadlines.Event, "the second attempt is dispatched by the new silo");
        var run = await second.WaitForRunAsync(runId, Deadlines.Event);
        Assert.Equal("Succeeded", run.GetProperty("status").GetString());
        var attempts = run.GetProperty("steps")[0].GetProperty("attempts");
        Assert.Equal(2, attempts.GetArrayLength());
        var delay = attempts[1].GetProperty("dispatchedAt").GetDateTimeOffset() - attempts[0].GetProperty("finishedAt").GetDateTimeOffset();
        Assert.True(delay >= TimeSpan.FromSeconds(3.9), $"the backoff was honoured across the restart ({delay})");
    }

    [Fact]
    public async Task Log_entries_older_than_the_configured_retention_are_gone()
    {
        await using var nats = await NatsServerProcess.StartNewAsync();
        await using var redis = await RedisServerProcess.StartNewAsync();
        var settings = new Dictionary<string, string?> { ["Conveyor:Nats:LogRetention"] = "00:00:02" };
        await using var host = await ConveyorTestHost.StartAsync(nats.Url, redis.ConnectionString, EngineFixture.Unique("retention"), settings);
        var runId = Guid.NewGuid().ToString();
        using (var posted = await host.Http.PostAsJsonAsync("/logs", new { runid = runId, driver = "d", pipeline = "", timestamp = "t", message = "short-lived" }))
        {
            Assert.Equal(System.Net.HttpStatusCode.Created, posted.StatusCode);
        }

        // The entry reached the log store: the stream's last sequence counts it and stays after it expires, so this
        // holds however late it is looked at (reading the entry back could miss it on a slow machine: it lives 2 s).
        await using (var client = new NATS.Client.Core.NatsConnection(NATS.Client.Core.NatsOpts.Default with { Url = nats.Url }))
        {
            var js = new NATS.Client.JetStream.NatsJSContext(client);
            await Eventually.TrueAsync(
                async () => (await js.GetStreamAsync(Conveyor.Contracts.Subjects.LogStoreStream)).Info.State.LastSeq >= 1,
                Deadlines.Event,
                "the entry is stored");
            Assert.Equal(TimeSpan.FromSeconds(2), (await js.GetStreamAsync(Conveyor.Contracts.Subjects.LogStoreStream)).Info.Config.MaxAge);
        }

        // Max age 2 s: the entry expires, and a run with neither a run record nor entries is unknown.
        await Eventually.TrueAsync(
            async () => (await host.Http.GetAsync($"/runs/{runId}/logs")).StatusCode == System.Net.HttpStatusCode.NotFound,
            Deadlines.Event,
            "the entry expires");
    }

    private static async Task<bool> CanConnectAsync(int port)
    {
        try
        {
            using var client = new TcpClient();
            await client.ConnectAsync("127.0.0.1", port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
