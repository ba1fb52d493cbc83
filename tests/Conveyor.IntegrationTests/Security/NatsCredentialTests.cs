using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Conveyor.Driver.Sdk;
using Conveyor.Testing;
using NATS.Client.Core;

namespace Conveyor.IntegrationTests.Security;

/// <summary>
/// The engine and an SDK driver on a nats-server that requires user/password (<c>--user/--pass</c>), a token
/// (<c>--auth</c>) or TLS: the engine dispatches, the SDK driver reconciles and its result comes back. Each needs
/// NATS.NKeys at run time, even without NKey auth (see build/Nats.props).
/// </summary>
public sealed class NatsCredentialTests : IAsyncLifetime
{
    private RedisServerProcess _redis = null!;
    private string _dir = null!;

    public async Task InitializeAsync()
    {
        _redis = await RedisServerProcess.StartNewAsync();
        _dir = Directory.CreateTempSubdirectory("conveyor-tls-").FullName;
    }

    public async Task DisposeAsync()
    {
        await _redis.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private sealed class OkDriver(string name, string type) : IDriver
    {
        public string Name => name;

        public IReadOnlyCollection<string> Resources => [type];

        public Task<DriverResult> ReconcileAsync(DriverEvent driverEvent, DriverContext context, CancellationToken cancellationToken) =>
            Task.FromResult(DriverResult.Ok("done"));
    }

    [Theory]
    [InlineData("tls")]
    [InlineData("userpass")]
    [InlineData("token")]
    public async Task A_pipeline_runs_when_engine_and_driver_carry_the_servers_credentials(string mode)
    {
        var secret = Guid.NewGuid().ToString("N");
        var ca = Path.Combine(_dir, "ca.pem");
        string[] serverArgs;
        Dictionary<string, string?> engine;
        Action<DriverOptions> driver;
        var wrong = NatsAuthOpts.Default;
        switch (mode)
        {
            case "userpass":
                serverArgs = ["--user", "conveyor", "--pass", secret];
                engine = new() { ["Conveyor:Nats:User"] = "conveyor", ["Conveyor:Nats:Password"] = secret };
                driver = o => { o.NatsUser = "conveyor"; o.NatsPassword = secret; };
                wrong = new NatsAuthOpts { Username = "conveyor", Password = secret + "x" };
                break;
            case "token":
                serverArgs = ["--auth", secret];
                engine = new() { ["Conveyor:Nats:Token"] = secret };
                driver = o => o.NatsToken = secret;
                wrong = new NatsAuthOpts { Token = secret + "x" };
                break;
            default:
                var (cert, key) = WriteSelfSignedCertificate(_dir);
                File.Copy(cert, ca);
                serverArgs = ["--tls", "--tlscert", cert, "--tlskey", key];
                engine = new() { ["Conveyor:Nats:TlsCaFile"] = ca };
                driver = o => o.NatsTlsCaFile = ca;
                break;
        }

        await using var nats = await NatsServerProcess.StartNewAsync(serverArgs);

        // The server really refuses a client without them, or with wrong ones.
        await using (var bare = new NatsConnection(NatsOpts.Default with { Url = nats.Url, MaxReconnectRetry = 0, ConnectTimeout = TimeSpan.FromSeconds(3), TlsOpts = new NatsTlsOpts { Mode = TlsMode.Disable } }))
        {
            await Assert.ThrowsAnyAsync<Exception>(async () => await bare.ConnectAsync());
        }

        if (wrong != NatsAuthOpts.Default)
        {
            await using var impostor = new NatsConnection(NatsOpts.Default with { Url = nats.Url, MaxReconnectRetry = 0, ConnectTimeout = TimeSpan.FromSeconds(3), AuthOpts = wrong });
            var refused = await Assert.ThrowsAnyAsync<Exception>(async () => await impostor.ConnectAsync());
            Assert.Contains("Authorization Violation", refused.ToString(), StringComparison.OrdinalIgnoreCase);
        }

        await using var host = await ConveyorTestHost.StartAsync(nats.Url, _redis.ConnectionString, $"nats-{mode}-{secret[..6]}", engine);
        var type = EngineFixture.Unique("svc");
        var name = EngineFixture.Unique("drv");
        await host.PostJsonAsync("/resource-definitions", new { name = type, version = "1", schema = new { type = "object" } });
        await host.PostJsonAsync("/pipelines", new { name = type, resource = type, steps = new[] { new { id = "1", driver = name } } });

        var options = new DriverOptions { Name = name, Resources = [type], NatsUrl = nats.Url, ShutdownGracePeriod = TimeSpan.FromSeconds(2) };
        driver(options);
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await using var manager = new DriverManager(new OkDriver(name, type), options);
        var running = manager.RunAsync(cts.Token);
        await manager.WaitUntilReadyAsync(cts.Token);

        var created = await host.PostJsonAsync("/resources", new { name = "web", resource = type, pipeline = type, spec = new { } });
        var run = await host.WaitForRunAsync(created.GetProperty("runid").GetString()!, Deadlines.Event);
        Assert.Equal("Succeeded", run.GetProperty("status").GetString());
        // The driver's own result, so the dispatch and the result both crossed the authenticated connections.
        Assert.Equal("done", run.GetProperty("steps")[0].GetProperty("attempts")[0].GetProperty("message").GetString());
        using (var ready = await host.Http.GetAsync("/readyz"))
        {
            Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        }

        await cts.CancelAsync();
        await running;
    }

    /// <summary>A self-signed certificate for 127.0.0.1 and localhost, as PEM files (certificate, key).</summary>
    private static (string Cert, string Key) WriteSelfSignedCertificate(string dir)
    {
        using var rsa = RSA.Create(2048);
        var request = new CertificateRequest("CN=conveyor-test-nats", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        san.AddDnsName("localhost");
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: true, hasPathLengthConstraint: false, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment | X509KeyUsageFlags.KeyCertSign, critical: false));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], critical: false));
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        var cert = Path.Combine(dir, "server-cert.pem");
        var key = Path.Combine(dir, "server-key.pem");
        File.WriteAllText(cert, certificate.ExportCertificatePem());
        File.WriteAllText(key, rsa.ExportPkcs8PrivateKeyPem());
        return (cert, key);
    }
}
