using System.Text.Json;
using Conveyor.Contracts;

namespace Conveyor.UnitTests;

/// <summary>Pins the wire format byte for byte: original drivers parse exactly these shapes.</summary>
public sealed class WireFormatTests
{
    [Fact]
    public void Driver_message_has_the_original_keys_and_a_string_payload()
    {
        var resource = new Resource
        {
            Id = "11111111-2222-3333-4444-555555555555",
            Name = "build-app",
            ResourceType = "flutter-builder",
            Metadata = new SortedDictionary<string, string> { ["version"] = "1" },
            Spec = JsonSerializer.Deserialize<JsonElement>("""{"image":"ubuntu"}"""),
        };
        var message = new DriverMessage
        {
            Event = "create",
            Payload = ConveyorJson.SerializeResource(resource),
            Id = "0123456789abcdef01234567",
            RunId = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        };

        var json = JsonSerializer.Serialize(message, ConveyorJson.Context.DriverMessage);

        Assert.Equal(
            """{"event":"create","payload":"{\u0022id\u0022:\u002211111111-2222-3333-4444-555555555555\u0022,\u0022name\u0022:\u0022build-app\u0022,\u0022resource\u0022:\u0022flutter-builder\u0022,\u0022metadata\u0022:{\u0022version\u0022:\u00221\u0022},\u0022spec\u0022:{\u0022image\u0022:\u0022ubuntu\u0022}}","id":"0123456789abcdef01234567","run_id":"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"}""",
            json);
        var payload = JsonDocument.Parse(JsonDocument.Parse(json).RootElement.GetProperty("payload").GetString()!).RootElement;
        Assert.Equal(["id", "name", "resource", "metadata", "spec"], payload.EnumerateObject().Select(p => p.Name));
    }

    [Fact]
    public void Pipeline_is_omitted_from_a_resource_only_when_empty()
    {
        var with = ConveyorJson.SerializeResource(new Resource { Name = "a", ResourceType = "t", Pipeline = "p" });
        var without = ConveyorJson.SerializeResource(new Resource { Name = "a", ResourceType = "t" });

        Assert.Equal("""{"id":"","name":"a","pipeline":"p","resource":"t","metadata":null,"spec":null}""", with);
        Assert.Equal("""{"id":"","name":"a","resource":"t","metadata":null,"spec":null}""", without);
    }

    [Fact]
    public void Pipeline_event_uses_run_id_and_the_one_word_driverresult_key()
    {
        var evt = new PipelineEvent
        {
            Event = EventNames.DriverResult,
            RunId = "r",
            Resource = new Resource { Name = "a", ResourceType = "t" },
            DriverResult = new DriverResultEvent { Success = true, Message = "ok", Data = JsonSerializer.Deserialize<JsonElement>("""{"k":"v"}"""), Driver = "A" },
        };

        Assert.Equal(
            """{"event":"driver.result","run_id":"r","resource":{"id":"","name":"a","resource":"t","metadata":null,"spec":null},"driverresult":{"success":true,"message":"ok","data":{"k":"v"},"driver":"A"}}""",
            JsonSerializer.Serialize(evt, ConveyorJson.Context.PipelineEvent));
    }

    [Fact]
    public void Start_event_carries_the_zero_driver_result_like_the_original()
    {
        var json = JsonSerializer.Serialize(new PipelineEvent { Event = "create", RunId = "r" }, ConveyorJson.Context.PipelineEvent);
        Assert.Contains("""
            "driverresult":{"success":false,"message":"","data":null,"driver":""}
            """, json, StringComparison.Ordinal);
    }

    [Fact]
    public void Results_from_go_drivers_are_read_case_insensitively_and_ignore_unknown_keys()
    {
        const string fromGo = """{"Event":"driver.result","RUN_ID":"r","resource":{"name":"a","resource":"t","metadata":{"version":"1"},"spec":{}},"driverresult":{"success":false,"message":"boom","data":null,"driver":"B","extra":1}}""";

        var evt = JsonSerializer.Deserialize(fromGo, ConveyorJson.Context.PipelineEvent)!;

        Assert.Equal("driver.result", evt.Event);
        Assert.Equal("r", evt.RunId);
        Assert.False(evt.DriverResult.Success);
        Assert.Equal("boom", evt.DriverResult.Message);
        Assert.Equal("B", evt.DriverResult.Driver);
        Assert.Equal("1", evt.Resource!.Metadata!["version"]);
    }

    [Fact]
    public void Log_entry_uses_runid_without_underscore_and_omits_absent_labels()
    {
        var json = JsonSerializer.Serialize(new LogEntry { RunId = "r", Driver = "d", Timestamp = "2026-01-01T00:00:00Z", Message = "hi" }, ConveyorJson.Context.LogEntry);
        Assert.Equal("""{"runid":"r","driver":"d","pipeline":"","timestamp":"2026-01-01T00:00:00Z","message":"hi"}""", json);
    }

    [Fact]
    public void Dispatch_ids_are_24_hex_and_stable_per_step_attempt()
    {
        var a = MessageIds.ForDispatch("run", "step", 1);
        Assert.Matches("^[0-9a-f]{24}$", a);
        Assert.Equal(a, MessageIds.ForDispatch("run", "step", 1));
        Assert.NotEqual(a, MessageIds.ForDispatch("run", "step", 2));
        Assert.Matches("^[0-9a-f]{24}$", MessageIds.NewId());
        Assert.Equal("run:step:3", MessageIds.DedupKey("run", "step", 3));
    }

    [Theory]
    [InlineData("drivers.a.resources.t", "drivers.a.resources.t", true)]
    [InlineData("drivers.a.resources.*", "drivers.a.resources.t", true)]
    [InlineData("drivers.a.resources.>", "drivers.a.resources.t", true)]
    [InlineData("drivers.>", "drivers.a.resources.t", true)]
    [InlineData(">", "resources.t", true)]
    [InlineData("drivers.*.resources.t", "drivers.b.resources.t", true)]
    [InlineData("drivers.a.resources.t", "drivers.b.resources.t", false)]
    [InlineData("drivers.a.resources", "drivers.a.resources.t", false)]
    [InlineData("drivers.a.resources.t.x", "drivers.a.resources.t", false)]
    [InlineData("drivers.a.resources.>", "drivers.a.resources", false)]
    [InlineData("resources.*", "resources.t.u", false)]
    public void Subject_filters_match_like_nats(string filter, string subject, bool expected)
    {
        Assert.Equal(expected, Subjects.FilterMatches(filter, subject));
    }

    [Fact]
    public void Subjects_are_the_originals()
    {
        Assert.Equal("resources.app", Subjects.Resources("app"));
        Assert.Equal("drivers.builder.resources.app", Subjects.DriverResources("builder", "app"));
        Assert.Equal("logs.r1", Subjects.Logs("r1"));
        Assert.Equal("live.logs.r1.builder", Subjects.LiveLogs("r1", "builder"));
        Assert.Equal("pipelines.driver.result", Subjects.DriverResult);
        Assert.Equal("pipelines.pipeline.init", Subjects.PipelineInit);
        Assert.Equal(["resources.>", "events.>", "drivers.>"], Subjects.MessagesStreamSubjects);
    }
}
