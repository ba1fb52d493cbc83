using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Conveyor.Testing;

namespace Conveyor.ClusterTests;

/// <summary>
/// One <c>conveyor-silo</c> process in cluster mode on the test's redis-server and nats-server, on free loopback ports,
/// with failure detection shortened so a killed silo is declared dead in seconds.
/// </summary>
public sealed class SiloProcess : DotnetProcess
{
    private SiloProcess(string name, int httpPort, IEnumerable<string> arguments)
        : base(name, BuiltAssembly("src/Conveyor.Silo", "conveyor-silo"), arguments)
    {
        Address = new Uri($"http://127.0.0.1:{httpPort}");
        Http = new HttpClient { BaseAddress = Address, Timeout = TimeSpan.FromSeconds(60) };
        Http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", AdminKey);
    }

    /// <summary>The admin key every test silo is bootstrapped with: cluster mode requires API keys.</summary>
    public const string AdminKey = "cvk_clustertests0001_Q2x1c3RlclRlc3RzQWRtaW5LZXlGb3JDb252ZXlvcjAx";

    public Uri Address { get; }

    public HttpClient Http { get; }

    /// <summary>Settings every test silo gets; <paramref name="extra"/> adds or overrides.</summary>
    public static Dictionary<string, string> Settings(string clusterId, string natsUrl, string redis, IDictionary<string, string>? extra = null)
    {
        var settings = new Dictionary<string, string>
        {
            ["Conveyor:Mode"] = "Cluster",
            ["Conveyor:ClusterId"] = clusterId,
            ["Conveyor:ServiceId"] = clusterId,
            ["Conveyor:AdvertisedAddress"] = "127.0.0.1",
            ["Conveyor:Auth:BootstrapKey"] = AdminKey,
            // The load tests start hundreds of runs a second through this one key; the write limit has its own tests.
            ["Conveyor:Auth:WriteRequestsPerSecond"] = "0",
            ["ConnectionStrings:nats"] = natsUrl,
            ["ConnectionStrings:redis"] = redis,
            // A killed silo is suspected after 2 missed 1 s probes and declared dead by one vote (two-silo clusters).
            ["Conveyor:Membership:ProbeTimeout"] = "00:00:01",
            ["Conveyor:Membership:NumMissedProbesLimit"] = "2",
            ["Conveyor:Membership:NumVotesForDeathDeclaration"] = "1",
            ["Conveyor:Membership:TableRefreshTimeout"] = "00:00:02",
            ["Conveyor:Membership:IAmAliveTablePublishTimeout"] = "00:00:05",
            ["Conveyor:Membership:DeathVoteExpirationTimeout"] = "00:00:10",
            ["Conveyor:Membership:EnableIndirectProbes"] = "false",
            ["Conveyor:Messaging:ResponseTimeout"] = "00:00:15",
            // A dead silo's unacked results come back after 5 s; its runs' reminders tick every 5 s.
            ["Conveyor:Nats:ResultAckWait"] = "00:00:05",
            ["Conveyor:Runs:KeepAlivePeriod"] = "00:00:05",
            ["Logging:LogLevel:Default"] = "Warning",
            ["Logging:LogLevel:Orleans"] = "Warning",
            ["Logging:LogLevel:Orleans.Runtime.Silo"] = "Warning",
            ["Logging:LogLevel:Microsoft.Hosting.Lifetime"] = "Information",
            ["Logging:Console:FormatterName"] = "simple",
        };
        if (extra is not null)
        {
            foreach (var (key, value) in extra)
            {
                settings[key] = value;
            }
        }

        return settings;
    }

    /// <summary>
    /// Starts a silo and waits until <c>/readyz</c> answers 200. Its ports are chosen free just before it binds them;
    /// when another process on a busy machine took one in between, the silo is started again on new ones.
    /// </summary>
    public static async Task<SiloProcess> StartAsync(string name, IDictionary<string, string> settings, TimeSpan? readyWithin = null)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await StartOnceAsync(name, settings, readyWithin);
            }
            catch (InvalidOperationException ex) when (attempt < 5 && ex.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
            {
            }
        }
    }

    private static async Task<SiloProcess> StartOnceAsync(string name, IDictionary<string, string> settings, TimeSpan? readyWithin)
    {
        var httpPort = ServerProcess.FindFreePort();
        var all = new Dictionary<string, string>(settings)
        {
            ["Urls"] = $"http://127.0.0.1:{httpPort}",
            ["Conveyor:SiloPort"] = ServerProcess.FindFreePort().ToString(CultureInfo.InvariantCulture),
            ["Conveyor:GatewayPort"] = ServerProcess.FindFreePort().ToString(CultureInfo.InvariantCulture),
        };
        var silo = new SiloProcess(name, httpPort, all.Select(kv => $"--{kv.Key}={kv.Value}"));
        try
        {
            await silo.WaitReadyAsync(readyWithin ?? Deadlines.Startup);
            return silo;
        }
        catch
        {
            await silo.DisposeAsync();
            throw;
        }
    }

    /// <summary>Starts silos side by side (joining one cluster); on any failure none is left running.</summary>
    public static async Task<SiloProcess[]> StartManyAsync(IDictionary<string, string> settings, params string[] names)
    {
        var starts = names.Select(n => StartAsync(n, settings)).ToArray();
        try
        {
            return await Task.WhenAll(starts);
        }
        catch
        {
            foreach (var start in starts.Where(t => t.IsCompletedSuccessfully))
            {
                await start.Result.DisposeAsync();
            }

            throw;
        }
    }

    /// <summary>Waits until <c>/readyz</c> answers 200.</summary>
    public Task WaitReadyAsync(TimeSpan timeout) =>
        Eventually.TrueAsync(
            async () =>
            {
                if (HasExited)
                {
                    throw new InvalidOperationException($"silo {Name} exited with {ExitCode}:\n{RecentOutput}");
                }

                return await ReadyStatusAsync() == 200;
            },
            timeout,
            $"silo {Name} should become ready");

    /// <summary>Status code of <c>/readyz</c>, 0 when nothing answers.</summary>
    public async Task<int> ReadyStatusAsync() => (await ReadyAsync()).Status;

    /// <summary>Status code and body of <c>/readyz</c>; status 0 when nothing answers.</summary>
    public async Task<(int Status, string Body)> ReadyAsync()
    {
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            using var response = await Http.GetAsync("/readyz", cts.Token);
            return ((int)response.StatusCode, await response.Content.ReadAsStringAsync(cts.Token));
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            return (0, ex.Message);
        }
    }

    public async Task<JsonElement> PostJsonAsync(string path, object body, int expectedStatus = 201)
    {
        using var response = await Http.PostAsJsonAsync(path, body);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == expectedStatus, $"POST {path} on {Name}: expected {expectedStatus}, got {(int)response.StatusCode}: {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    public async Task<(int Status, JsonElement Body)> TryGetJsonAsync(string path)
    {
        using var response = await Http.GetAsync(path);
        var text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone());
    }

    public async Task<JsonElement> GetJsonAsync(string path)
    {
        var (status, body) = await TryGetJsonAsync(path);
        Assert.True(status == 200, $"GET {path} on {Name}: {status}: {body}");
        return body;
    }

    protected override void DisposeResources() => Http.Dispose();
}
