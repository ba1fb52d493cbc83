using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Conveyor.IntegrationTests;

/// <summary>
/// A driver that speaks the original protocol in raw JSON, the way the original Go runtime does — no SDK types, no
/// Conveyor headers — so the engine's behaviour towards original drivers is tested without anything masking it.
/// </summary>
public sealed class RawDriver : IAsyncDisposable
{
    private readonly NatsConnection _nats;
    private readonly CancellationTokenSource _stop = new();
    private readonly Func<JsonElement, Task<(bool Success, string Message, JsonNode? Data)?>> _reconcile;
    private Task? _loop;
    private Task? _cancelLoop;

    private RawDriver(string natsUrl, string name, Func<JsonElement, Task<(bool, string, JsonNode?)?>> reconcile)
    {
        _nats = new NatsConnection(NatsOpts.Default with { Url = natsUrl, Name = "raw-driver-" + name });
        Name = name;
        _reconcile = reconcile;
    }

    public string Name { get; }

    /// <summary>Every message received, as raw JSON, in arrival order, with its arrival time.</summary>
    public ConcurrentQueue<(DateTimeOffset At, string Subject, JsonElement Message)> Received { get; } = new();

    /// <summary>Cancel messages the engine sent to this driver (raw JSON).</summary>
    public ConcurrentQueue<JsonElement> Cancels { get; } = new();

    /// <summary>Starts a consumer on <paramref name="subject"/> and answers every message.</summary>
    public static Task<RawDriver> StartAsync(
        string natsUrl,
        string name,
        string subject,
        Func<JsonElement, (bool Success, string Message, JsonNode? Data)>? reconcile = null)
    {
        reconcile ??= _ => (true, $"{name} ok", new JsonObject { ["by"] = name });
        return StartAsync(natsUrl, name, subject, m => Task.FromResult<(bool, string, JsonNode?)?>(reconcile(m)));
    }

    /// <summary>Starts a driver whose answer may be delayed or withheld (null: no result is published).</summary>
    public static async Task<RawDriver> StartAsync(
        string natsUrl,
        string name,
        string subject,
        Func<JsonElement, Task<(bool Success, string Message, JsonNode? Data)?>> reconcile)
    {
        var driver = new RawDriver(natsUrl, name, reconcile);
        await driver._nats.ConnectAsync();
        var subscription = await driver._nats.SubscribeCoreAsync<byte[]>($"conveyor.cancel.{name}");
        driver._cancelLoop = Task.Run(async () =>
        {
            try
            {
                await foreach (var msg in subscription.Msgs.ReadAllAsync(driver._stop.Token))
                {
                    driver.Cancels.Enqueue(JsonDocument.Parse(msg.Data!).RootElement.Clone());
                }
            }
            catch (OperationCanceledException)
            {
            }
            finally
            {
                await subscription.DisposeAsync();
            }
        });
        var js = new NatsJSContext(driver._nats);
        var consumer = await js.CreateOrUpdateConsumerAsync("messages", new ConsumerConfig(name + "-raw")
        {
            FilterSubject = subject,
            AckPolicy = ConsumerConfigAckPolicy.Explicit,
            DeliverPolicy = ConsumerConfigDeliverPolicy.All,
        });
        driver._loop = Task.Run(() => driver.RunAsync(js, consumer));
        return driver;
    }

    private async Task RunAsync(NatsJSContext js, INatsJSConsumer consumer)
    {
        try
        {
            await foreach (var msg in consumer.ConsumeAsync<byte[]>(cancellationToken: _stop.Token))
            {
                var message = JsonDocument.Parse(msg.Data!).RootElement.Clone();
                Received.Enqueue((DateTimeOffset.UtcNow, msg.Subject, message));
                var payload = JsonNode.Parse(message.GetProperty("payload").GetString()!);
                var answer = await _reconcile(message);
                if (answer is not { } a)
                {
                    await msg.AckAsync();
                    continue;
                }

                var (success, text, data) = a;
                var result = new JsonObject
                {
                    ["event"] = "driver.result",
                    ["run_id"] = message.GetProperty("run_id").GetString(),
                    ["resource"] = payload,
                    ["driverresult"] = new JsonObject { ["success"] = success, ["message"] = text, ["data"] = data, ["driver"] = Name },
                };
                var ack = await js.PublishAsync("pipelines.driver.result", Encoding.UTF8.GetBytes(result.ToJsonString()));
                ack.EnsureSuccess();
                await msg.AckAsync();
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_loop is not null)
        {
            await _loop;
        }

        if (_cancelLoop is not null)
        {
            await _cancelLoop;
        }

        var js = new NatsJSContext(_nats);
        try
        {
            await js.DeleteConsumerAsync("messages", Name + "-raw");
        }
        catch (NatsJSApiException)
        {
        }

        await _nats.DisposeAsync();
        _stop.Dispose();
    }
}
