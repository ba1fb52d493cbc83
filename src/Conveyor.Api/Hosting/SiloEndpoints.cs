using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Connections.Security;

namespace Conveyor.Api.Hosting;

/// <summary>
/// Mutual TLS for Orleans traffic (section <c>Conveyor:Tls</c>): between silos, and between silos and gateway clients.
/// Every peer presents a certificate that chains to <see cref="CaFile"/>, or the connection is dropped during the
/// handshake — before a single grain call. Without it, anyone who reaches the silo port and knows the cluster id can
/// join the cluster.
/// </summary>
public sealed class ConveyorTlsOptions
{
    /// <summary>This silo's certificate: a PEM file (with <see cref="KeyFile"/>) or a PKCS#12 (<c>.pfx</c>/<c>.p12</c>) file.</summary>
    public string? CertificateFile { get; set; }

    /// <summary>The PEM private key of <see cref="CertificateFile"/>, when that is PEM.</summary>
    public string? KeyFile { get; set; }

    /// <summary>Password of a PKCS#12 <see cref="CertificateFile"/>. Never logged.</summary>
    public string? CertificatePassword { get; set; }

    /// <summary>PEM file of the certificate authority (or authorities) every peer's certificate must chain to.</summary>
    public string? CaFile { get; set; }

    /// <summary>Whether TLS is configured.</summary>
    public bool Enabled => !string.IsNullOrWhiteSpace(CertificateFile);

    /// <summary>Redacts the password.</summary>
    public override string ToString() =>
        $"CertificateFile={CertificateFile}, KeyFile={KeyFile}, CertificatePassword={(string.IsNullOrEmpty(CertificatePassword) ? "" : "***")}, CaFile={CaFile}";
}

/// <summary>
/// Where a silo listens and who may talk to it. Cluster mode listens on the advertised address only (not on every
/// interface), the client gateway is off unless <see cref="ConveyorOptions.GatewayPort"/> is set, and
/// <see cref="ConveyorTlsOptions"/> turns on mutual TLS.
/// </summary>
internal static partial class SiloEndpoints
{
    /// <summary>Endpoints of a cluster-mode silo.</summary>
    public static void ConfigureCluster(ISiloBuilder silo, ConveyorOptions options) =>
        silo.ConfigureEndpoints(AdvertisedAddress(options), options.SiloPort, options.GatewayPort, listenOnAnyHostAddress: options.ListenOnAnyAddress);

    /// <summary>Mutual TLS on every Orleans connection, when configured; a warning at start in cluster mode when not.</summary>
    public static void ConfigureTls(ISiloBuilder silo, ConveyorOptions options)
    {
        if (!options.Tls.Enabled)
        {
            if (options.Mode == ConveyorMode.Cluster)
            {
                silo.Services.AddHostedService<PlainClusterWarning>();
            }

            return;
        }

        var (certificate, authorities) = Load(options.Tls);
        silo.UseTls(certificate, tls => Require(tls, authorities));
    }

    /// <summary>Both sides must present a certificate of the cluster's authority: silos to silos, clients to gateways.</summary>
    public static void Require(TlsOptions tls, X509Certificate2Collection authorities)
    {
        ArgumentNullException.ThrowIfNull(tls);
        tls.RemoteCertificateMode = RemoteCertificateMode.RequireCertificate;
        tls.ClientCertificateMode = RemoteCertificateMode.RequireCertificate;
        // Peers are addressed by IP, so names are not checked: the chain to the cluster's own authority is the proof.
        tls.RemoteCertificateValidation = (certificate, _, _) => ChainsTo(certificate, authorities);
    }

    /// <summary>The certificate (with its key) and the authorities of <paramref name="tls"/>.</summary>
    public static (X509Certificate2 Certificate, X509Certificate2Collection Authorities) Load(ConveyorTlsOptions tls)
    {
        ArgumentNullException.ThrowIfNull(tls);
        if (string.IsNullOrWhiteSpace(tls.CaFile))
        {
            throw new InvalidOperationException("Invalid Conveyor configuration: Conveyor:Tls:CaFile is required with Conveyor:Tls:CertificateFile (the authority every silo's and client's certificate must chain to).");
        }

        try
        {
            var path = tls.CertificateFile!;
            var certificate = path.EndsWith(".pfx", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".p12", StringComparison.OrdinalIgnoreCase)
                ? X509CertificateLoader.LoadPkcs12FromFile(path, tls.CertificatePassword)
                : ReloadWithKey(X509Certificate2.CreateFromPemFile(path, tls.KeyFile));
            var authorities = new X509Certificate2Collection();
            authorities.ImportFromPemFile(tls.CaFile);
            if (!certificate.HasPrivateKey || authorities.Count == 0)
            {
                throw new InvalidOperationException("the certificate has no private key, or the CA file holds no certificate");
            }

            return (certificate, authorities);
        }
        catch (Exception ex) when (ex is System.Security.Cryptography.CryptographicException or IOException or ArgumentException or InvalidOperationException)
        {
            throw new InvalidOperationException($"Invalid Conveyor configuration (Conveyor:Tls): {ex.Message}", ex);
        }
    }

    /// <summary>Whether <paramref name="certificate"/> chains to one of <paramref name="authorities"/> (and is valid now).</summary>
    public static bool ChainsTo(X509Certificate2 certificate, X509Certificate2Collection authorities)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(authorities);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(certificate);
    }

    /// <summary>The address other silos reach this one at; the first non-loopback IPv4 address when not configured.</summary>
    public static IPAddress AdvertisedAddress(ConveyorOptions options)
    {
        if (!string.IsNullOrEmpty(options.AdvertisedAddress))
        {
            return IPAddress.Parse(options.AdvertisedAddress);
        }

        return NetworkInterface.GetAllNetworkInterfaces()
            .Where(n => n.OperationalStatus == OperationalStatus.Up && n.NetworkInterfaceType != NetworkInterfaceType.Loopback)
            .SelectMany(n => n.GetIPProperties().UnicastAddresses)
            .Select(a => a.Address)
            .FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork) ?? IPAddress.Loopback;
    }

    // A key loaded from PEM is ephemeral; TLS stacks want it the way a PKCS#12 load leaves it.
    private static X509Certificate2 ReloadWithKey(X509Certificate2 pem)
    {
        using (pem)
        {
            return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
        }
    }

    /// <summary>Says once, at start, that a cluster without TLS trusts its network.</summary>
    private sealed partial class PlainClusterWarning(ILogger<PlainClusterWarning> logger) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            LogPlain(logger);
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        [LoggerMessage(Level = LogLevel.Warning, Message = "Orleans traffic between silos is neither encrypted nor authenticated: anything that reaches the silo port can join the cluster and call any grain. Keep the silo (and gateway) ports on a private network, or set Conveyor:Tls:CertificateFile, KeyFile and CaFile for mutual TLS")]
        private static partial void LogPlain(ILogger logger);
    }
}
