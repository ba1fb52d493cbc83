namespace Conveyor.Bench;

/// <summary>Settings of the <c>peers</c> scenario beyond <see cref="BenchSettings"/>.</summary>
internal sealed record PeerSettings
{
    public static IReadOnlyList<string> AllSystems { get; } = ["conveyor", "hangfire", "bullmq"];

    /// <summary>The peers' Redis <c>appendfsync</c> (<c>--peer-fsync</c>): <c>everysec</c> as in the issue, or <c>always</c> like Conveyor's.</summary>
    public string Fsync { get; init; } = "everysec";

    /// <summary>Hangfire worker count and BullMQ worker concurrency (<c>--peer-workers</c>; default: one per chain in flight).</summary>
    public int Workers { get; init; } = 64;

    /// <summary>Which systems run (<c>--systems conveyor,hangfire,bullmq</c>).</summary>
    public IReadOnlyList<string> Systems { get; init; } = AllSystems;

    /// <summary>Whether this is a <c>--smoke</c> pass: nothing may reach the network.</summary>
    public bool Smoke { get; init; }
}

/// <summary>
/// One pass of <c>peers</c>: Conveyor's B3 (and B1 at one run in flight, closed loop), then Hangfire and BullMQ on the
/// same ten-step chains, one after the other on the same machine, each on its own fresh servers.
/// </summary>
internal sealed class PeersScenario(BenchSettings settings, PeerSettings peers, Metrics metrics, TextWriter log)
{
    public async Task RunAsync()
    {
        metrics.Notes["settings.peers"] = $"systems {string.Join(',', peers.Systems)}; peer redis appendfsync {peers.Fsync}; peer workers {peers.Workers}";
        if (peers.Systems.Contains("conveyor"))
        {
            await using var engine = await EngineUnderTest.StartAsync(settings, log);
            var scenarios = new EngineScenarios(engine, settings, metrics, log);
            await scenarios.SaturationAsync();
            await scenarios.DispatchAsync(openLoop: false);
            metrics.Notes["durability.conveyor"] = "the silo's redis-server: appendonly yes, appendfsync always; nats-server file store (2.9: written to the OS before each ack, synced every minute)";
        }

        if (peers.Systems.Contains("hangfire"))
        {
            await new HangfirePeer(settings, peers, metrics, log).RunAsync();
            metrics.Notes["durability.hangfire"] = $"redis-server: appendonly yes, appendfsync {peers.Fsync}; {peers.Workers} workers in one server process";
        }

        if (peers.Systems.Contains("bullmq"))
        {
            await new BullMqPeer(settings, peers, metrics, log).RunAsync();
            if (!metrics.Notes.ContainsKey("peers.bullmq"))
            {
                metrics.Notes["durability.bullmq"] = $"redis-server: appendonly yes, appendfsync {peers.Fsync}; one Worker process, concurrency {peers.Workers}, removeOnComplete";
            }
        }
    }
}
