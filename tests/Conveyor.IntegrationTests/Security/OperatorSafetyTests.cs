using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Conveyor.Contracts;
using Conveyor.Driver.Sdk;
using Conveyor.Samples.Shell;
using Conveyor.Testing;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Conveyor.IntegrationTests.Security;

/// <summary>
/// What an operator key (or anyone who can write a resource or a log line) cannot turn into more: no command through
/// run params or a resource spec, no secret in the log store, no line in a run that does not exist yet, no core
/// pinned by a schema pattern.
/// </summary>
[Collection(HardeningCollection.Name)]
public sealed class OperatorSafetyTests(HardeningFixture fx)
{
    [Fact]
    public void The_shell_driver_takes_its_command_from_the_step_only_never_from_the_resource()
    {
        static DriverEvent Event(string? paramsJson) => new()
        {
            Event = "create", RunId = "r", MessageId = "m", Payload = "{}", Subject = "drivers.shell.resources.app",
            Resource = new Resource { Name = "web", Spec = JsonSerializer.Deserialize<JsonElement>("""{"command":"touch /tmp/pwned"}""") },
            Params = paramsJson is null ? null : JsonSerializer.Deserialize<JsonElement>(paramsJson),
        };

        Assert.Null(ShellDriver.Command(Event(null)));
        Assert.Null(ShellDriver.Command(Event("""{"other":"x"}""")));
        Assert.Equal("make test", ShellDriver.Command(Event("""{"command":"make test"}""")));
    }

    [Fact]
    public async Task Known_secret_values_are_masked_in_the_log_store()
    {
        var http = fx.Open.Http;
        const string Password = "s3cr3t-Pa55w0rd-for-the-db";
        await HardeningFixture.SendAsync(http, HttpMethod.Put, "/secrets/MASKED_DB_PASSWORD", new { value = Password });
        var type = await HardeningFixture.DefinitionAsync(http);
        var pipeline = EngineFixture.Unique("masked");
        await HardeningFixture.SendAsync(http, HttpMethod.Post, "/pipelines", new
        {
            name = pipeline, resource = type,
            steps = new[] { new { id = "migrate", driver = EngineFixture.Unique("nobody"), secrets = new[] { "MASKED_DB_PASSWORD" } } },
        });
        var run = (await HardeningFixture.SendAsync(http, HttpMethod.Post, $"/pipelines/{pipeline}/runs", new { resource = "web" })).GetProperty("id").GetString()!;

        // What a careless driver does: it echoes the value it fetched.
        await using (var nats = new NatsConnection(NatsOpts.Default with { Url = fx.Nats.Url }))
        {
            var entry = JsonSerializer.SerializeToUtf8Bytes(new { runid = run, driver = "migrator", pipeline, timestamp = "1", message = $"connecting with password={Password}", labels = new { step = "migrate", dsn = $"pg://app:{Password}@db" } });
            (await new NatsJSContext(nats).PublishAsync(Subjects.Logs(run), entry)).EnsureSuccess();
        }

        JsonElement item = default;
        await Eventually.TrueAsync(
            async () => (await fx.Open.GetJsonAsync($"/runs/{run}/logs")).GetProperty("items") is { } items && items.GetArrayLength() == 1 && (item = items[0]).ValueKind != JsonValueKind.Undefined,
            TimeSpan.FromSeconds(30),
            "the entry is stored");
        Assert.Equal("connecting with password=***", item.GetProperty("message").GetString());
        Assert.Equal("pg://app:***@db", item.GetProperty("labels").GetProperty("dsn").GetString());
        Assert.DoesNotContain(Password, await http.GetStringAsync($"/runs/{run}/logs?format=text"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Log_lines_for_runs_that_do_not_exist_yet_are_refused()
    {
        // A run id derived from a trigger is predictable: a line written now would show in that run once it starts.
        var future = Grains.Abstractions.RunIds.Derive("manual", "default", "ship", "release-9");
        using (var refused = await fx.Open.Http.PostAsJsonAsync("/logs", new { runid = future.ToString(), driver = "d", message = "planted" }))
        {
            await ProblemAssert.IsAsync(refused, HttpStatusCode.NotFound, "not-found");
        }

        using (var absent = await fx.Open.Http.GetAsync($"/runs/{future}/logs"))
        {
            Assert.Equal(HttpStatusCode.NotFound, absent.StatusCode);
        }

        // The original's free-form ids are never a run's, and stay writable.
        using var original = await fx.Open.Http.PostAsJsonAsync("/logs", new { runid = EngineFixture.Unique("jenkins-42"), driver = "d", message = "m" });
        Assert.Equal(HttpStatusCode.Created, original.StatusCode);
    }

    [Fact]
    public async Task A_catastrophic_schema_pattern_answers_400_at_once()
    {
        var type = await HardeningFixture.DefinitionAsync(fx.Open.Http, schema: new { type = "object", properties = new { name = new { type = "string", pattern = "^(a+)+$" } } });
        var elapsed = Stopwatch.StartNew();
        using var response = await fx.Open.Http.PostAsJsonAsync("/resources", new { name = "evil", resource = type, spec = new { name = new string('a', 40) + "!" } });
        await ProblemAssert.NamesFieldAsync(response, "spec.name");
        Assert.True(elapsed.Elapsed < TimeSpan.FromSeconds(20), $"answered after {elapsed.Elapsed.TotalSeconds:0.0} s");
        using var absent = await fx.Open.Http.GetAsync($"/resources/{type}/evil");
        Assert.Equal(HttpStatusCode.NotFound, absent.StatusCode);
    }
}
