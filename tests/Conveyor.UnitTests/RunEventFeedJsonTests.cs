using System.Text.Json;
using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Events;
using Xunit;

namespace Conveyor.UnitTests;

public sealed class RunEventFeedJsonTests
{
    [Fact]
    public void A_feed_message_is_written_byte_for_byte_as_the_serializer_writes_it_and_reads_back()
    {
        var runId = Guid.NewGuid();
        RunTransition[] items =
        [
            new() { Sequence = 1, At = new DateTimeOffset(2026, 12, 5, 13, 4, 5, 678, TimeSpan.Zero), Status = "Running", Previous = "Pending", RunStatus = RunStatus.Running },
            new() { Sequence = 2, At = new DateTimeOffset(2026, 12, 5, 15, 4, 5, TimeSpan.FromHours(2)).AddTicks(1234), Step = "build[0]", Status = "Failed", Previous = "Running", Attempt = 3, Message = "exit 1: \"quoted\", <tag> & ünïcode\n", RunStatus = RunStatus.TimedOut },
            new() { Sequence = 3, At = DateTimeOffset.UnixEpoch, Step = "deploy", Status = "Skipped", RunStatus = RunStatus.Paused },
        ];

        var written = RunEventFeed.ToUtf8(runId, "team-a", "web", items);
        var expected = JsonSerializer.SerializeToUtf8Bytes(
            new RunEventMessage { RunId = runId, Namespace = "team-a", Pipeline = "web", Items = items.Select(RunEventItem.From).ToList() },
            RunEventFeed.Json);
        Assert.Equal(System.Text.Encoding.UTF8.GetString(expected), System.Text.Encoding.UTF8.GetString(written));

        // The writer is reused per thread: a second, shorter message is not followed by the first one's bytes.
        var second = RunEventFeed.ToUtf8(runId, "n", "p", [items[2]]);
        var read = JsonSerializer.Deserialize<RunEventMessage>(second, RunEventFeed.Json)!;
        Assert.Equal(3, Assert.Single(read.Items).Sequence);
        Assert.Equal(RunStatus.Paused, read.Items[0].RunStatus);
    }
}
