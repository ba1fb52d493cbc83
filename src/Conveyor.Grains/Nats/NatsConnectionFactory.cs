using NATS.Client.Core;

namespace Conveyor.Grains.Nats;

/// <summary>Builds NATS client options from <see cref="ConveyorNatsOptions"/>.</summary>
internal static class NatsConnectionFactory
{
    /// <summary>Client options for the engine's connection.</summary>
    public static NatsOpts CreateOpts(ConveyorNatsOptions options, string clientName)
    {
        ArgumentNullException.ThrowIfNull(options);
        var auth = NatsAuthOpts.Default;
        if (!string.IsNullOrEmpty(options.Token))
        {
            auth = auth with { Token = options.Token };
        }
        else if (!string.IsNullOrEmpty(options.User))
        {
            auth = auth with { Username = options.User, Password = options.Password };
        }

        return NatsOpts.Default with
        {
            Url = options.Url,
            Name = clientName,
            AuthOpts = auth,
            TlsOpts = Tls(options.TlsCaFile, options.TlsCertFile, options.TlsKeyFile),
            // Never give up: the engine waits out a NATS restart and JetStream state survives it.
            MaxReconnectRetry = -1,
            ReconnectWaitMin = TimeSpan.FromMilliseconds(100),
            ReconnectWaitMax = TimeSpan.FromSeconds(2),
        };
    }

    /// <summary>
    /// TLS options: with a CA or a client certificate the connection requires TLS (never falls back to plain text);
    /// without them the client's default applies (TLS when the URL is <c>tls://</c> or the server asks for it).
    /// </summary>
    public static NatsTlsOpts Tls(string? caFile, string? certFile, string? keyFile)
    {
        if (string.IsNullOrEmpty(caFile) && string.IsNullOrEmpty(certFile))
        {
            return NatsTlsOpts.Default;
        }

        return NatsTlsOpts.Default with
        {
            Mode = TlsMode.Require,
            CaFile = string.IsNullOrEmpty(caFile) ? null : caFile,
            CertFile = string.IsNullOrEmpty(certFile) ? null : certFile,
            KeyFile = string.IsNullOrEmpty(keyFile) ? null : keyFile,
        };
    }
}
