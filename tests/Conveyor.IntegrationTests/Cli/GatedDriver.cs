using Conveyor.Driver.Sdk;

namespace Conveyor.IntegrationTests;

/// <summary>Logs a line, waits until released, logs another and succeeds.</summary>
internal sealed class GatedDriver(string name, string resource) : IDriver
{
    public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public string Name => name;

    public IReadOnlyCollection<string> Resources => [resource];

    public async Task<DriverResult> ReconcileAsync(DriverEvent driverEvent, DriverContext context, CancellationToken cancellationToken)
    {
        await context.Logger.LogAsync($"started {driverEvent.StepId}", cancellationToken: cancellationToken);
        Entered.TrySetResult();
        await Release.Task.WaitAsync(cancellationToken);
        await context.Logger.LogAsync($"finishing {driverEvent.StepId}", cancellationToken: cancellationToken);
        return DriverResult.Ok("done");
    }
}
