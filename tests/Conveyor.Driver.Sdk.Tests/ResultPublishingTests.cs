using Conveyor.Contracts;
using Conveyor.Driver.Sdk.Tests.Infrastructure;
using Conveyor.Testing;
using NATS.Client.JetStream;
using Xunit.Abstractions;

namespace Conveyor.Driver.Sdk.Tests;

/// <summary>Removes and restores the pipeline-engine stream, so it has a server of its own.</summary>
public sealed class ResultPublishingTests(JetStreamFixture nats, ITestOutputHelper output) : IClassFixture<JetStreamFixture>
{
    private static readonly TimeSpan Deadline = Deadlines.Event;

    [Fact]
    public async Task Result_is_published_before_the_message_is_acked()
    {
        var name = Wire.UniqueName("careful");
        var runId = Guid.NewGuid().ToString();
        var driver = new TestDriver(name, "app");
        var consumer = DriverManager.StepsConsumerName(name, "app");
        // No core subscriber on the result subject here: it would turn JetStream's fast "no responders" into a timeout.
        await using var manager = await RunningManager.StartAsync(
            driver,
            new DriverOptions { Name = name, NatsUrl = nats.Url, FetchExpiry = TimeSpan.FromSeconds(1), RetryDelay = TimeSpan.FromMilliseconds(200) },
            new XunitLoggerFactory(output));

        // Without the stream, JetStream cannot store the result: the message must stay unacked and come back.
        await nats.JetStream.DeleteStreamAsync(Subjects.PipelineEngineStream);
        try
        {
            await Wire.PublishAsync(nats.JetStream, $"drivers.{name}.resources.app", Wire.DriverMessageJson(runId, "app", "x"));
            await Eventually.TrueAsync(() => driver.Received.Count >= 2, Deadline, "the message is redelivered after the failed publish");
            var pending = (await nats.JetStream.GetConsumerAsync(Subjects.MessagesStream, consumer)).Info;
            Assert.True(pending.NumAckPending + (long)pending.NumPending >= 1, "the message is not acked while its result is unpublished");
        }
        finally
        {
            await nats.JetStream.CreateOrUpdateStreamAsync(JetStreamFixture.StreamConfigs.Single(s => s.Name == Subjects.PipelineEngineStream));
        }

        await Eventually.TrueAsync(
            async () =>
            {
                var info = (await nats.JetStream.GetConsumerAsync(Subjects.MessagesStream, consumer)).Info;
                return info.NumAckPending == 0 && info.NumPending == 0;
            },
            Deadline,
            "the message is acked once its result is stored");
        var stored = await nats.JetStream.GetStreamAsync(Subjects.PipelineEngineStream);
        Assert.Equal(1L, stored.Info.State.Messages);
        Assert.All(driver.Received, e => Assert.Equal(runId, e.RunId));
        Assert.Contains(driver.Received, e => e.DeliveryCount >= 2);
    }
}
