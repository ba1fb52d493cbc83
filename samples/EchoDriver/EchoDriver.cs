using System.Globalization;
using Conveyor.Driver.Sdk;

namespace Conveyor.Samples.Echo;

/// <summary>
/// Logs what it received to the run log, then reports success with the driver, step and resource name as data, or
/// fails when its driver name is listed in <c>--fail</c>. One instance serves every configured driver name.
/// </summary>
internal sealed class EchoDriver(EchoSettings settings, TimeProvider timeProvider) : IDriver
{
    public string Name => "echo";

    public IReadOnlyCollection<string> Resources => ["app"];

    public async Task<DriverResult> ReconcileAsync(DriverEvent driverEvent, DriverContext context, CancellationToken cancellationToken)
    {
        var driver = context.DriverName;
        var resource = driverEvent.Resource;
        var step = driverEvent.StepId;
        await context.Logger.LogAsync($"{driver}: {driverEvent.Event} {resource.ResourceType}/{resource.Name}", cancellationToken: cancellationToken);
        await context.Logger.LogAsync(
            step is null ? $"{driver}: no pipeline step" : $"{driver}: step {step}, attempt {driverEvent.Attempt}",
            cancellationToken: cancellationToken);

        if (settings.Delay > TimeSpan.Zero)
        {
            await Task.Delay(settings.Delay, timeProvider, cancellationToken);
        }

        var fail = settings.Failing.Contains(driver);
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"{timeProvider.GetUtcNow():HH:mm:ss} {driver,-10} {driverEvent.Event,-8} run={driverEvent.RunId} step={step ?? "-"} resource={resource.ResourceType}/{resource.Name} -> {(fail ? "FAIL" : "ok")}"));

        return fail
            ? DriverResult.Fail($"{driver} failed on purpose (--fail {driver})")
            : DriverResult.Ok($"{driver} done", new { driver, step, resource = resource.Name });
    }
}
