using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Conveyor.Contracts;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Conveyor.ClusterTests;

/// <summary>
/// A driver in the test process that answers every step it receives (after an optional delay), concurrently, with the
/// step and attempt headers the SDK sends, and counts deliveries per (run, step, attempt) so duplicates are visible.
/// It reconnects by itself through a NATS restart.
/// </summary>
public sealed class LoadDriver : IAsyncDisposable
{
    private readonly NatsConnection _nats;
    private readonly CancellationTokenSource _stop = new();
    private readonly TimeSpan _delay;
    private readonly Func<JsonElement, bool> _answer;
    private readonly SemaphoreSlim _slots = new(64);
    private Task? _loop;

    private LoadDriver(string natsUrl, string name, TimeSpan delay, Func<JsonElement, bool>? answer)
    {
        _nats = new NatsConnection(NatsOpts.Default with { Url = natsUrl, Name = "load-driver-" + name, MaxReconnectRetry = -1, ReconnectWaitMax = TimeSpan.FromSeconds(1) });
        Name = name;
        _delay = delay;
        _answer = answer ?? (_ => true);
    }

    public string Name { get; }

    /// <summary>Deliveries per <c>run/step/attempt</c>.</summary>
    public ConcurrentDictionary<string, int> Deliveries { get; } = new(StringComparer.Ordinal);

    public int TotalDeliveries => Deliveries.Values.Sum();

    /// <summary>Deliveries beyond the first of the same (run, step, attempt).</summary>
    public int DuplicateDeliveries => Deliveries.Values.Sum(n => n - 1);

    /// <summary>
    /// Starts a durable consumer for <paramref name="name"/>'s steps on resource type <paramref name="resourceType"/>;
    /// <paramref name="answer"/> false withholds the result (the step never finishes on the driver's side).
    /// </summary>
    public static async Task<LoadDriver> StartAsync(string natsUrl, string name, string resourceType, TimeSpan delay = default, Func<JsonElement, bool>? answer = null)
    {
        var driver = new LoadDriver(natsUrl, name, delay, answer);
        await driver._nats.ConnectAsync();
        var js = new NatsJSContext(driver._nats);
        var config = new ConsumerConfig(name)
        {
            FilterSubject = Subjects.DriverResources(name, resourceType),
            AckPolicy = ConsumerConfigAckPolicy.Explicit,
            DeliverPolicy = ConsumerConfigDeliverPolicy.All,
            AckWait = TimeSpan.FromSeconds(5),
            MaxAckPending = 1000,
        };
        await js.CreateOrUpdateConsumerAsync(Subjects.MessagesStream, config);
        driver._loop = Task.Run(() => driver.RunAsync(js, config));
        return driver;
    }

    private async Task RunAsync(NatsJSContext js, ConsumerConfig config)
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                var consumer = await js.CreateOrUpdateConsumerAsync(Subjects.MessagesStream, config, _stop.Token);
                await foreach (var msg in consumer.ConsumeAsync<byte[]>(opts: new NatsJSConsumeOpts { MaxMsgs = 128, Expires = TimeSpan.FromSeconds(10), IdleHeartbeat = TimeSpan.FromSeconds(2) }, cancellationToken: _stop.Token))
                {
                    await _slots.WaitAsync(_stop.Token);
                    _ = HandleAsync(js, msg);
                }
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception)
            {
                // NATS restarting: consume again once it is back.
                await Task.Delay(200);
            }
        }
    }

    private async Task HandleAsync(NatsJSContext js, INatsJSMsg<byte[]> msg)
    {
        try
        {
            var message = JsonDocument.Parse(msg.Data!).RootElement.Clone();
            var runId = message.GetProperty("run_id").GetString()!;
            var step = message.GetProperty("step").GetString()!;
            var attempt = message.GetProperty("attempt").GetInt32();
            Deliveries.AddOrUpdate($"{runId}/{step}/{attempt}", 1, (_, n) => n + 1);
            if (_delay > TimeSpan.Zero)
            {
                await Task.Delay(_delay, _stop.Token);
            }

            if (!_answer(message))
            {
                await msg.AckAsync(cancellationToken: _stop.Token);
                return;
            }

            var result = new JsonObject
            {
                ["event"] = EventNames.DriverResult,
                ["run_id"] = runId,
                ["resource"] = JsonNode.Parse(message.GetProperty("payload").GetString()!),
                ["driverresult"] = new JsonObject { ["success"] = true, ["message"] = $"{step} done", ["data"] = new JsonObject { ["step"] = step }, ["driver"] = Name },
            };
            var headers = new NatsHeaders
            {
                [Headers.RunId] = runId,
                [Headers.StepId] = step,
                [Headers.Attempt] = attempt.ToString(System.Globalization.CultureInfo.InvariantCulture),
            };
            // Publish the result before acking, as the SDK does: a crash in between means a redelivery, never a loss.
            while (true)
            {
                try
                {
                    var ack = await js.PublishAsync(Subjects.DriverResult, Encoding.UTF8.GetBytes(result.ToJsonString()), headers: headers, cancellationToken: _stop.Token);
                    ack.EnsureSuccess();
                    break;
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    await Task.Delay(200, _stop.Token);
                }
            }

            await msg.AckAsync(cancellationToken: _stop.Token);
        }
        catch (Exception)
        {
            // Stopping, or the ack was lost in a NATS restart: the message comes back, which is what a crash looks like.
        }
        finally
        {
            _slots.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_loop is not null)
        {
            await _loop;
        }

        await _nats.DisposeAsync();
        _stop.Dispose();
    }
}
