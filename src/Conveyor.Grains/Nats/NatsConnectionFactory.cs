using NATS.Client.Core;

namespace Conveyor.Grains.Nats;

/// <summary>Builds NATS client options from <see cref="ConveyorNatsOptions"/>.</summary>
public static class NatsConnectionFactory
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
            // Never give up: the engine waits out a NATS restart and JetStream state survives it.
            MaxReconnectRetry = -1,
            ReconnectWaitMin = TimeSpan.FromMilliseconds(100),
            ReconnectWaitMax = TimeSpan.FromSeconds(2),
        };
    }
}
