// The benchmark's driver process, started by Conveyor.Bench (never by hand):
//   conveyor-bench-driver driver --nats URL --name noop --resource bench [--concurrency 256]
//       a no-op driver on the SDK: answers every step at once; its result data carries when the step was received
//       ("recv") and answered ("done"), in Unix microseconds, so the tool can split latency and driver time.
//   conveyor-bench-driver floor --nats URL [--concurrency 256]
//       the raw JetStream worker of the floor: durable pull consume from bench.floor.req, publish the same body to
//       bench.floor.res (awaiting the JetStream ack), then ack, which is what a driver does per step.
//   conveyor-bench-driver hangfire-worker --redis HOST:PORT [--concurrency 64]
//       the Hangfire peer's server (Conveyor.Bench.Hangfire): that many workers run the ten-step chain jobs.
// Each prints "ready" on stdout once its consumers exist, and stops cleanly when stdin closes.
using System.Globalization;
using System.Text.Json;
using Conveyor.Bench.Hangfire;
using Conveyor.Driver.Sdk;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

var mode = args.Length > 0 ? args[0] : "";
string Option(string name, string fallback)
{
    var i = Array.IndexOf(args, "--" + name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
}

var nats = Option("nats", "nats://127.0.0.1:4222");
var concurrency = int.Parse(Option("concurrency", "256"), CultureInfo.InvariantCulture);
using var stop = new CancellationTokenSource();

// The tool closes our stdin to stop us; a stdin that is not redirected never ends this wait.
_ = Task.Run(async () =>
{
    using var stdin = Console.OpenStandardInput();
    var buffer = new byte[64];
    while (await stdin.ReadAsync(buffer) > 0)
    {
    }

    await stop.CancelAsync();
});

switch (mode)
{
    case "driver":
        var name = Option("name", "noop");
        var resource = Option("resource", "bench");
        await using (var manager = new DriverManager(
            new NoopDriver(name, resource),
            new DriverOptions { Name = name, Resources = [resource], NatsUrl = nats, MaxConcurrency = concurrency, MaxAckPending = concurrency * 4 }))
        {
            var run = manager.RunAsync(stop.Token);
            await manager.WaitUntilReadyAsync(stop.Token);
            Console.WriteLine("ready");
            await run;
        }

        return 0;
    case "floor":
        await FloorWorker.RunAsync(nats, concurrency, stop.Token);
        return 0;
    case "hangfire-worker":
        await HangfireChain.RunWorkerAsync(Option("redis", "127.0.0.1:6379"), int.Parse(Option("concurrency", "64"), CultureInfo.InvariantCulture), stop.Token);
        return 0;
    default:
        await Console.Error.WriteLineAsync("usage: conveyor-bench-driver driver|floor|hangfire-worker --nats URL [--name N] [--resource R] [--concurrency C] [--redis HOST:PORT]");
        return 2;
}

/// <summary>Answers every step at once with when it received and answered it.</summary>
internal sealed class NoopDriver(string name, string resource) : IDriver
{
    public string Name => name;

    public IReadOnlyCollection<string> Resources => [resource];

    public Task<DriverResult> ReconcileAsync(DriverEvent driverEvent, DriverContext context, CancellationToken cancellationToken)
    {
        var recv = UnixMicros();
        using var data = JsonDocument.Parse(string.Create(CultureInfo.InvariantCulture, $"{{\"recv\":{recv},\"done\":{UnixMicros()}}}"));
        return Task.FromResult(DriverResult.Ok("", data.RootElement));
    }

    private static long UnixMicros() => (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) / 10;
}

/// <summary>The worker half of the raw JetStream round trip (see the file header).</summary>
internal static class FloorWorker
{
    public const string RequestStream = "bench-floor-req";
    public const string Consumer = "floor-worker";
    public const string ResultSubject = "bench.floor.res";

    public static async Task RunAsync(string url, int concurrency, CancellationToken cancellationToken)
    {
        await using var connection = new NatsConnection(new NatsOpts { Url = url, Name = "bench-floor-worker" });
        var js = new NatsJSContext(connection);
        var consumer = await js.CreateOrUpdateConsumerAsync(
            RequestStream,
            new ConsumerConfig(Consumer) { AckPolicy = ConsumerConfigAckPolicy.Explicit, MaxAckPending = concurrency * 4 },
            cancellationToken);
        Console.WriteLine("ready");
        // Not disposed: workers still in flight at shutdown release it after this method returns.
        var slots = new SemaphoreSlim(concurrency);
        try
        {
            await foreach (var msg in consumer.ConsumeAsync<byte[]>(opts: new NatsJSConsumeOpts { MaxMsgs = concurrency }, cancellationToken: cancellationToken))
            {
                await slots.WaitAsync(cancellationToken);
                _ = Task.Run(
                    async () =>
                    {
                        try
                        {
                            var ack = await js.PublishAsync(ResultSubject, msg.Data, cancellationToken: cancellationToken);
                            ack.EnsureSuccess();
                            await msg.AckAsync(cancellationToken: cancellationToken);
                        }
                        catch (OperationCanceledException)
                        {
                        }
                        finally
                        {
                            slots.Release();
                        }
                    },
                    CancellationToken.None);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
