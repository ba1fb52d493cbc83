using Microsoft.Extensions.Logging;
using NATS.Client.Core;
using NATS.Client.JetStream;
using Polly;
using Polly.Retry;
using StackExchange.Redis;

namespace Conveyor.Grains.Resilience;

/// <summary>
/// Retry pipelines for the calls to NATS and Redis that a server restart or a network blip can fail: a few attempts
/// with jittered exponential backoff and a log line per retry. Only faults that can pass are retried; anything else
/// (a rejected request, a bug) surfaces at once. Every caller also has an outer recovery (the run's timer re-publishes,
/// JetStream redelivers a result), so a bounded inner retry is enough.
/// </summary>
internal sealed partial class TransientFaults
{
    /// <summary>Creates the pipelines.</summary>
    public TransientFaults(ILogger<TransientFaults> logger, TransientFaultOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(logger);
        options ??= new TransientFaultOptions();
        Nats = Build("nats", options, logger);
        Redis = Build("redis", options, logger);
    }

    /// <summary>Pipeline for NATS publishes and JetStream API calls.</summary>
    public ResiliencePipeline Nats { get; }

    /// <summary>Pipeline for Conveyor's own Redis commands (the run index).</summary>
    public ResiliencePipeline Redis { get; }

    /// <summary>Whether <paramref name="exception"/> is a fault that retrying can get past.</summary>
    public static bool IsTransient(Exception exception) => exception switch
    {
        OperationCanceledException => false,
        // JetStream answers 503 while it (re)starts and 408/504 on internal timeouts; 4xx are the caller's mistakes.
        NatsJSApiException api => api.Error.Code is 408 or >= 500,
        NatsJSDuplicateMessageException or NatsJSProtocolException => false,
        Conveyor.Grains.Nats.JetStreamPublishException publish => publish.Transient,
        NatsException => true,
        RedisConnectionException or RedisTimeoutException => true,
        // Not confirmed by enough replicas, or refused by a primary that a failover just demoted: the next try goes to
        // the new primary once the connection has followed it.
        Conveyor.Grains.Runs.RedisReplicationException => true,
        // A restarted Redis answers LOADING while it replays its append-only file.
        RedisServerException redis => redis.Message.StartsWith("LOADING", StringComparison.Ordinal)
            || redis.Message.StartsWith("TRYAGAIN", StringComparison.Ordinal)
            || redis.Message.StartsWith("BUSY", StringComparison.Ordinal)
            || redis.Message.StartsWith("READONLY", StringComparison.Ordinal),
        TimeoutException => true,
        _ => false,
    };

    private static ResiliencePipeline Build(string dependency, TransientFaultOptions options, ILogger logger) =>
        new ResiliencePipelineBuilder()
            .AddRetry(new RetryStrategyOptions
            {
                Name = dependency,
                ShouldHandle = new PredicateBuilder().Handle<Exception>(IsTransient),
                MaxRetryAttempts = options.MaxRetryAttempts,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = options.InitialDelay,
                MaxDelay = options.MaxDelay,
                OnRetry = args =>
                {
                    LogRetry(logger, args.Outcome.Exception, dependency, args.AttemptNumber + 1, options.MaxRetryAttempts, args.RetryDelay);
                    return default;
                },
            })
            .Build();

    [LoggerMessage(Level = LogLevel.Warning, Message = "Transient {Dependency} fault; retry {Retry} of {MaxRetries} in {Delay}")]
    private static partial void LogRetry(ILogger logger, Exception? exception, string dependency, int retry, int maxRetries, TimeSpan delay);
}

/// <summary>Bounds of the transient-fault retries (configuration section <c>Conveyor:Resilience</c>).</summary>
public sealed class TransientFaultOptions
{
    /// <summary>Configuration section.</summary>
    public const string Section = "Conveyor:Resilience";

    /// <summary>Retries after the first attempt.</summary>
    [System.ComponentModel.DataAnnotations.Range(0, 20)]
    public int MaxRetryAttempts { get; set; } = 4;

    /// <summary>Base delay of the exponential backoff (jittered).</summary>
    public TimeSpan InitialDelay { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Largest delay between two attempts.</summary>
    public TimeSpan MaxDelay { get; set; } = TimeSpan.FromSeconds(2);
}
