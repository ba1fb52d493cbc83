using System.Text.Json;
using Conveyor.Contracts;
using Conveyor.Grains.Nats;

namespace Conveyor.UnitTests;

/// <summary>The engine's reading of a result message matches the wire type it stands for, minus the resource.</summary>
public sealed class ResultEnvelopeTests
{
    [Theory]
    [InlineData("""{"event":"driver.result","run_id":"r","resource":{"id":"","name":"a","resource":"t","metadata":null,"spec":null},"driverresult":{"success":true,"message":"ok","data":{"k":[1,2]},"driver":"A"}}""")]
    [InlineData("""{"Event":"driver.result","RUN_ID":"r","resource":{"name":"a","resource":"t","metadata":{"version":"1"},"spec":{}},"driverresult":{"success":false,"message":"boom","data":null,"driver":"B","extra":1}}""")]
    [InlineData("""{"driverresult":{"driver":"C","data":"text"},"run_id":"00000000-0000-0000-0000-000000000001","event":"driver.result"}""")]
    [InlineData("""{"event":"pipelines.pipeline.init","run_id":"x"}""")]
    public void Result_envelope_reads_what_the_pipeline_event_reads(string body)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(body);
        var full = JsonSerializer.Deserialize(bytes, ConveyorJson.Context.PipelineEvent)!;

        var envelope = JsonSerializer.Deserialize(bytes, ResultEnvelopeJsonContext.Default.ResultEnvelope)!;

        Assert.Equal(full.Event, envelope.Event);
        Assert.Equal(full.RunId, envelope.RunId);
        Assert.Equal(full.DriverResult?.Success, envelope.DriverResult?.Success);
        Assert.Equal(full.DriverResult?.Message, envelope.DriverResult?.Message);
        Assert.Equal(full.DriverResult?.Driver, envelope.DriverResult?.Driver);
        Assert.Equal(full.DriverResult?.Data?.GetRawText(), envelope.DriverResult?.Data?.GetRawText());
    }

    [Theory]
    [InlineData("""{"event":"driver.result","run_id":"r","driverresult":{"success":"yes"}}""")]
    [InlineData("""{"event":"driver.result","run_id":"r","driverresult":""")]
    [InlineData("""[1,2]""")]
    public void Result_envelope_rejects_what_the_pipeline_event_rejects(string body)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(body);

        Assert.ThrowsAny<JsonException>(() => JsonSerializer.Deserialize(bytes, ConveyorJson.Context.PipelineEvent));
        Assert.ThrowsAny<JsonException>(() => JsonSerializer.Deserialize(bytes, ResultEnvelopeJsonContext.Default.ResultEnvelope));
    }
}
