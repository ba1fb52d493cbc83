using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Conveyor.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using Orleans.Connections.Security;
using Orleans.Runtime;
using Xunit.Abstractions;

namespace Conveyor.ClusterTests;

/// <summary>
/// A process that is not a silo of the cluster — but knows its cluster and service ids and reaches its ports — cannot
/// call a grain: the silo listens on its advertised address only, opens no client gateway unless told to, and with
/// mutual TLS a client (or silo) without a certificate of the cluster's authority is dropped in the handshake.
/// </summary>
public sealed class SiloSecurityTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ConnectDeadline = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_silo_with_default_endpoints_lets_no_outside_client_call_a_grain()
    {
        await using var nats = await NatsServerProcess.StartNewAsync();
        await using var redis = await RedisServerProcess.StartNewAsync();
        var clusterId = "sec-" + Guid.NewGuid().ToString("N")[..8];
        await using var silo = await SiloProcess.StartAsync("silo", SiloProcess.Settings(clusterId, nats.Url, redis.ConnectionString));
        var siloPort = await SiloPortAsync(silo);

        // It listens on the advertised address (127.0.0.1) only: another address of this machine gets no answer.
        Assert.True(await AcceptsAsync(IPAddress.Loopback, siloPort), "the silo port should be open on the advertised address");
        Assert.False(await AcceptsAsync(IPAddress.Parse("127.0.0.2"), siloPort), "the silo port must not be open on other addresses");

        // No gateway: a client that knows the ids and tries the silo port gets no grain.
        var refused = await Assert.ThrowsAnyAsync<Exception>(() => CallGrainAsync(clusterId, siloPort, certificate: null, authorities: null));
        output.WriteLine($"outside client: {refused.GetType().Name}: {refused.Message}");
    }

    [Fact]
    public async Task With_mutual_tls_silos_form_a_cluster_and_only_a_client_with_the_clusters_certificate_calls_a_grain()
    {
        using var pki = TestPki.Create();
        await using var nats = await NatsServerProcess.StartNewAsync();
        await using var redis = await RedisServerProcess.StartNewAsync();
        var clusterId = "mtls-" + Guid.NewGuid().ToString("N")[..8];
        var gatewayPort = ServerProcess.FindFreePort();
        var settings = SiloProcess.Settings(clusterId, nats.Url, redis.ConnectionString, new Dictionary<string, string>
        {
            ["Conveyor:Tls:CertificateFile"] = pki.SiloCertificateFile,
            ["Conveyor:Tls:KeyFile"] = pki.SiloKeyFile,
            ["Conveyor:Tls:CaFile"] = pki.AuthorityFile,
        });
        await using var first = await SiloProcess.StartAsync("silo-1", new Dictionary<string, string>(settings) { ["Conveyor:GatewayPort"] = gatewayPort.ToString(CultureInfo.InvariantCulture) });
        await using var second = await SiloProcess.StartAsync("silo-2", settings);

        // The positive control: a client with a certificate of the cluster's authority calls a grain, and sees both
        // silos (which could only meet over mutual TLS).
        var hosts = await CallGrainAsync(clusterId, gatewayPort, pki.Client, pki.Authorities);
        Assert.Equal(2, hosts);

        var plain = await Assert.ThrowsAnyAsync<Exception>(() => CallGrainAsync(clusterId, gatewayPort, certificate: null, authorities: null));
        output.WriteLine($"client without TLS: {plain.GetType().Name}: {plain.Message}");
        var rogue = await Assert.ThrowsAnyAsync<Exception>(() => CallGrainAsync(clusterId, gatewayPort, pki.Rogue, pki.Authorities));
        output.WriteLine($"client with another authority's certificate: {rogue.GetType().Name}: {rogue.Message}");
        var orphan = await Assert.ThrowsAnyAsync<Exception>(() => CallGrainAsync(clusterId, gatewayPort, pki.Client, new X509Certificate2Collection(pki.RogueAuthority)));
        output.WriteLine($"client that does not trust the cluster's authority: {orphan.GetType().Name}: {orphan.Message}");
    }

    /// <summary>Connects an Orleans client to <paramref name="port"/> and calls a grain; returns the active silo count.</summary>
    private static async Task<int> CallGrainAsync(string clusterId, int port, X509Certificate2? certificate, X509Certificate2Collection? authorities)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.UseOrleansClient(client =>
        {
            client.UseStaticClustering(new IPEndPoint(IPAddress.Loopback, port));
            client.Configure<ClusterOptions>(o =>
            {
                o.ClusterId = clusterId;
                o.ServiceId = clusterId;
            });
            client.UseConnectionRetryFilter((_, _) => Task.FromResult(false));
            if (certificate is not null)
            {
                client.UseTls(certificate, tls =>
                {
                    tls.RemoteCertificateMode = RemoteCertificateMode.RequireCertificate;
                    tls.RemoteCertificateValidation = (remote, _, _) => TestPki.ChainsTo(remote, authorities!);
                });
            }
        });
        using var host = builder.Build();
        using var deadline = new CancellationTokenSource(ConnectDeadline);
        try
        {
            await host.StartAsync(deadline.Token);
            var management = host.Services.GetRequiredService<IClusterClient>().GetGrain<IManagementGrain>(0);
            var call = management.GetHosts(onlyActive: true);
            if (await Task.WhenAny(call, Task.Delay(ConnectDeadline, deadline.Token)) != call)
            {
                throw new TimeoutException("the grain call did not answer");
            }

            return (await call).Count;
        }
        finally
        {
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await host.StopAsync(stop.Token);
        }
    }

    /// <summary>The silo port the process was given.</summary>
    private static Task<int> SiloPortAsync(SiloProcess silo) => Task.FromResult(silo.SiloPort);

    private static async Task<bool> AcceptsAsync(IPAddress address, int port)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            await socket.ConnectAsync(new IPEndPoint(address, port), deadline.Token);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>A certificate authority with a silo and a client certificate, and a rogue authority with its own client.</summary>
    private sealed class TestPki : IDisposable
    {
        private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("conveyor-pki-");

        public required X509Certificate2 Authority { get; init; }

        public required X509Certificate2 RogueAuthority { get; init; }

        public required X509Certificate2 Client { get; init; }

        public required X509Certificate2 Rogue { get; init; }

        public X509Certificate2Collection Authorities => new(Authority);

        public string AuthorityFile => Path.Combine(_directory.FullName, "ca.pem");

        public string SiloCertificateFile => Path.Combine(_directory.FullName, "silo.pem");

        public string SiloKeyFile => Path.Combine(_directory.FullName, "silo.key");

        public static TestPki Create()
        {
            var authority = NewAuthority("CN=Conveyor test cluster CA");
            var rogueAuthority = NewAuthority("CN=Someone else's CA");
            using var siloKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var silo = NewLeaf("CN=conveyor-silo", siloKey, authority);
            var pki = new TestPki
            {
                Authority = authority,
                RogueAuthority = rogueAuthority,
                Client = WithKey("CN=conveyor-client", authority),
                Rogue = WithKey("CN=conveyor-client", rogueAuthority),
            };
            File.WriteAllText(pki.AuthorityFile, authority.ExportCertificatePem());
            File.WriteAllText(pki.SiloCertificateFile, silo.ExportCertificatePem());
            File.WriteAllText(pki.SiloKeyFile, siloKey.ExportPkcs8PrivateKeyPem());
            return pki;
        }

        public static bool ChainsTo(X509Certificate2 certificate, X509Certificate2Collection authorities)
        {
            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.AddRange(authorities);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            return chain.Build(certificate);
        }

        private static X509Certificate2 NewAuthority(string subject)
        {
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
            request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
            request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
            request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
            return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(7));
        }

        private static X509Certificate2 NewLeaf(string subject, ECDsa key, X509Certificate2 issuer)
        {
            var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
            request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
            request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
            // Both usages: a silo is a TLS server to its peers' and clients' connections and a TLS client of its own.
            request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false));
            request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(issuer, true, false));
            var san = new SubjectAlternativeNameBuilder();
            san.AddIpAddress(IPAddress.Loopback);
            request.CertificateExtensions.Add(san.Build());
            return request.Create(issuer, DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(1), RandomNumberGenerator.GetBytes(8));
        }

        private static X509Certificate2 WithKey(string subject, X509Certificate2 issuer)
        {
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            using var leaf = NewLeaf(subject, key, issuer);
            using var withKey = leaf.CopyWithPrivateKey(key);
            // As a file would give it: TLS stacks want the key the way a PKCS#12 load leaves it.
            return X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);
        }

        public void Dispose()
        {
            Authority.Dispose();
            RogueAuthority.Dispose();
            Client.Dispose();
            Rogue.Dispose();
            _directory.Delete(recursive: true);
        }
    }
}
