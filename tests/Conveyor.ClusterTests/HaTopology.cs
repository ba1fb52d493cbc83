using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Conveyor.Testing;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;
using Conveyor.Contracts;

namespace Conveyor.ClusterTests;

/// <summary>
/// The recommended production topology on loopback: a three-node nats-server cluster with JetStream (streams and the
/// engine's consumers R3), Redis as a primary with two replicas watched by three Sentinels (the silos connect through
/// the Sentinels, and every write waits for one replica), three silos and a load driver. One per test class; a test
/// breaks one piece and <see cref="EnsureHealthyAsync"/> puts the topology back before the next.
/// </summary>
public sealed class HaTopology : IAsyncLifetime
{
    public const string ServiceName = "conveyor";
    private static readonly HttpClient Monitor = new() { Timeout = TimeSpan.FromSeconds(5) };
    private readonly List<SiloProcess> _silos = [];
    private int _siloGeneration;

    public List<NatsNode> Nats { get; } = [];

    public List<RedisServerProcess> Redis { get; } = [];

    public List<RedisSentinelProcess> Sentinels { get; } = [];

    public IReadOnlyList<SiloProcess> Silos => _silos;

    public LoadDriver Driver { get; private set; } = null!;

    public string NatsUrl => string.Join(",", Nats.Select(n => n.Server.Url));

    public string RedisConnectionString => string.Join(",", Sentinels.Select(s => s.Address)) + ",serviceName=" + ServiceName;

    /// <summary>
    /// The suite's silo settings with Conveyor's own failure detection defaults (not the suite's shortened ones), so
    /// the silo tests here measure what a deployment gets; results and reminders keep the suite's 5 s.
    /// </summary>
    public Dictionary<string, string> SiloSettings
    {
        get
        {
            var settings = SiloProcess.Settings("ha", NatsUrl, RedisConnectionString, new Dictionary<string, string>
            {
                ["Conveyor:Nats:Replicas"] = "3",
            });
            foreach (var key in settings.Keys.Where(k => k.StartsWith("Conveyor:Membership:", StringComparison.Ordinal)).ToList())
            {
                settings.Remove(key);
            }

            return settings;
        }
    }

    public async Task InitializeAsync()
    {
        var clusterPorts = Enumerable.Range(0, 3).Select(_ => ServerProcess.FindFreePort()).ToArray();
        var routes = string.Join(",", clusterPorts.Select(p => $"nats://127.0.0.1:{p}"));
        var starts = Enumerable.Range(0, 3).Select(async i =>
        {
            var monitor = ServerProcess.FindFreePort();
            var server = await NatsServerProcess.StartNewAsync(
            [
                "-n", $"n{i + 1}", "--cluster_name", "conveyor", "--cluster", $"nats://127.0.0.1:{clusterPorts[i]}", "--routes", routes,
                "-m", monitor.ToString(CultureInfo.InvariantCulture),
            ]);
            return new NatsNode($"n{i + 1}", server, monitor);
        }).ToList();
        Nats.AddRange(await Task.WhenAll(starts));
        await Task.WhenAll(Nats.Select(WaitNatsHealthyAsync));

        // A stream left at one replica by an earlier version: the silos scale it to three at start. A cluster that has
        // just elected its meta leader can still leave the first JetStream request unanswered (seen once in a CI run),
        // so the creation is asked again until it is answered; an identical create of an existing stream succeeds.
        await using (var connection = new NatsConnection(NatsOpts.Default with { Url = NatsUrl }))
        {
            var js = new NatsJSContext(connection);
            await Eventually.TrueAsync(
                async () =>
                {
                    try
                    {
                        await js.CreateStreamAsync(new StreamConfig(Subjects.MessagesStream, [.. Subjects.MessagesStreamSubjects])
                        {
                            Retention = StreamConfigRetention.Interest,
                            Storage = StreamConfigStorage.File,
                            DuplicateWindow = TimeSpan.FromMinutes(2),
                            NumReplicas = 1,
                        });
                        return true;
                    }
                    catch (Exception ex) when (ex is NatsJSApiNoResponseException or NatsNoRespondersException)
                    {
                        return false;
                    }
                },
                TimeSpan.FromSeconds(60),
                "the NATS cluster should answer the creation of the one-replica messages stream");
        }

        var primary = await RedisServerProcess.StartNewAsync();
        Redis.Add(primary);
        foreach (var _ in Enumerable.Range(0, 2))
        {
            Redis.Add(await RedisServerProcess.StartNewAsync(["--replicaof", "127.0.0.1", primary.Port.ToString(CultureInfo.InvariantCulture)]));
        }

        foreach (var _ in Enumerable.Range(0, 3))
        {
            Sentinels.Add(await RedisSentinelProcess.StartNewAsync(ServiceName, primary.Port, TimeSpan.FromSeconds(1)));
        }

        await WaitRedisHealthyAsync();
        _silos.AddRange(await SiloProcess.StartManyAsync(SiloSettings, "silo-1", "silo-2", "silo-3"));
        await ClusterLoad.DefineAsync(_silos[0]);
        Driver = await LoadDriver.StartAsync(NatsUrl, ClusterLoad.Driver, ClusterLoad.ResourceType, TimeSpan.FromMilliseconds(200));
    }

    public async Task DisposeAsync()
    {
        IAsyncDisposable?[] all = [Driver, .. _silos, .. Sentinels, .. Redis, .. Nats.Select(n => n.Server)];
        await Disposal.InOrderAsync(all);
    }

    /// <summary>Restarts what a test killed, replaces a silo that died, and waits until everything is healthy again.</summary>
    public async Task EnsureHealthyAsync()
    {
        foreach (var node in Nats.Where(n => n.Server.ProcessId is null))
        {
            await node.Server.StartAsync();
        }

        await Task.WhenAll(Nats.Select(WaitNatsHealthyAsync));
        foreach (var redis in Redis.Where(r => r.ProcessId is null))
        {
            await redis.StartAsync();
        }

        await WaitRedisHealthyAsync();
        for (var i = 0; i < _silos.Count; i++)
        {
            if (_silos[i].HasExited || !await ReadyWithinAsync(_silos[i], TimeSpan.FromSeconds(30)))
            {
                var old = _silos[i];
                await old.DisposeAsync();
                _siloGeneration++;
                _silos[i] = await SiloProcess.StartAsync($"{old.Name.Split('.')[0]}.{_siloGeneration}", SiloSettings);
            }
        }

        foreach (var silo in _silos)
        {
            await silo.WaitReadyAsync(TimeSpan.FromSeconds(60));
        }
    }

    private static async Task<bool> ReadyWithinAsync(SiloProcess silo, TimeSpan timeout)
    {
        try
        {
            // A silo may take a few seconds to see a recovered dependency (its Redis check is cached for 5 s).
            await silo.WaitReadyAsync(timeout);
            return true;
        }
        catch (Exception ex) when (ex is TimeoutException or InvalidOperationException)
        {
            return false;
        }
    }

    /// <summary>The node that leads the <c>messages</c> stream (drivers' dispatches).</summary>
    public async Task<NatsNode> StreamLeaderAsync(string stream)
    {
        await using var connection = new NatsConnection(NatsOpts.Default with { Url = NatsUrl });
        var js = new NatsJSContext(connection);
        var info = (await js.GetStreamAsync(stream)).Info;
        var leader = info.Cluster?.Leader ?? throw new InvalidOperationException($"stream {stream} has no leader");
        Assert.True(info.Config.NumReplicas == 3, $"stream {stream} is R{info.Config.NumReplicas}, expected R3");
        return Nats.Single(n => n.Name == leader);
    }

    /// <summary>The Redis process the Sentinels name as primary.</summary>
    public async Task<RedisServerProcess> RedisPrimaryAsync()
    {
        foreach (var sentinel in Sentinels.Where(s => s.ProcessId is not null))
        {
            var output = await RedisCliAsync(sentinel.Port, "SENTINEL", "get-master-addr-by-name", ServiceName);
            var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (lines.Length >= 2 && int.TryParse(lines[1], CultureInfo.InvariantCulture, out var port))
            {
                return Redis.Single(r => r.Port == port);
            }
        }

        throw new InvalidOperationException("no sentinel names a primary");
    }

    /// <summary>Runs redis-cli against a local port and returns its output.</summary>
    public static async Task<string> RedisCliAsync(int port, params string[] arguments)
    {
        var info = new ProcessStartInfo(ServerProcess.FindBinary("redis-cli") ?? "redis-cli")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in (string[])["-h", "127.0.0.1", "-p", port.ToString(CultureInfo.InvariantCulture), .. arguments])
        {
            info.ArgumentList.Add(argument);
        }

        using var process = Process.Start(info)!;
        var output = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        return output;
    }

    private async Task WaitRedisHealthyAsync()
    {
        var last = "";
        await Eventually.TrueAsync(
            async () =>
            {
                var primary = await RedisPrimaryAsync();
                var replication = await RedisCliAsync(primary.Port, "INFO", "replication");
                last = replication;
                var online = replication.Split('\n').Count(l => l.StartsWith("slave", StringComparison.Ordinal) && l.Contains("state=online", StringComparison.Ordinal));
                if (online < 2)
                {
                    return false;
                }

                // Every sentinel agrees and knows the other two.
                foreach (var sentinel in Sentinels)
                {
                    var master = (await RedisCliAsync(sentinel.Port, "SENTINEL", "master", ServiceName))
                        .Split('\n', StringSplitOptions.TrimEntries);
                    var fields = Enumerable.Range(0, master.Length / 2).ToDictionary(i => master[2 * i], i => master[(2 * i) + 1]);
                    if (fields.GetValueOrDefault("port") != primary.Port.ToString(CultureInfo.InvariantCulture)
                        || fields.GetValueOrDefault("flags") != "master"
                        || fields.GetValueOrDefault("num-other-sentinels") != "2"
                        || fields.GetValueOrDefault("num-slaves") is not { } slaves || int.Parse(slaves, CultureInfo.InvariantCulture) < 2)
                    {
                        return false;
                    }
                }

                return true;
            },
            TimeSpan.FromSeconds(60),
            $"Redis should have a primary with two online replicas that all sentinels agree on (last: {last})");
    }

    private static Task WaitNatsHealthyAsync(NatsNode node) =>
        Eventually.TrueAsync(
            async () =>
            {
                try
                {
                    using var response = await Monitor.GetAsync($"http://127.0.0.1:{node.MonitorPort}/healthz");
                    if (!response.IsSuccessStatusCode)
                    {
                        return false;
                    }

                    var jsz = JsonDocument.Parse(await Monitor.GetStringAsync($"http://127.0.0.1:{node.MonitorPort}/jsz")).RootElement;
                    return jsz.TryGetProperty("meta_cluster", out var meta) && meta.TryGetProperty("leader", out var leader) && leader.GetString() is { Length: > 0 };
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
                {
                    return false;
                }
            },
            TimeSpan.FromSeconds(60),
            $"nats-server {node.Name} should be healthy with a JetStream meta leader");
}

/// <summary>One nats-server of the cluster: its server name, process and monitoring port.</summary>
public sealed record NatsNode(string Name, NatsServerProcess Server, int MonitorPort);
