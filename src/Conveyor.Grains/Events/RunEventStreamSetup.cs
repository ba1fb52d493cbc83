using Microsoft.Extensions.Options;
using NATS.Client.Core;
using Orleans.Runtime;

namespace Conveyor.Grains.Events;

/// <summary>Creates the run events stream before the silo accepts work (when the feed is on).</summary>
internal sealed class RunEventStreamSetup(INatsConnection connection, RunEventFeed feed, IOptions<RunEventsOptions> options) : ILifecycleParticipant<ISiloLifecycle>
{
    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe(nameof(RunEventStreamSetup), ServiceLifecycleStage.RuntimeInitialize, async ct =>
        {
            if (!options.Value.Enabled)
            {
                return;
            }

            await connection.ConnectAsync().ConfigureAwait(false);
            await feed.EnsureStreamAsync(ct).ConfigureAwait(false);
        });
}
