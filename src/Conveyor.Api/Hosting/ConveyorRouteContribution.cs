using Microsoft.AspNetCore.Routing;

namespace Conveyor.Api.Hosting;

/// <summary>
/// Routes that a Conveyor add-on package (such as Conveyor.Prometheus) registers at <c>AddConveyor</c> time and that
/// <c>MapConveyorApi</c> maps under its own group, so they share its prefix, error handling and authorization.
/// </summary>
internal sealed class ConveyorRouteContribution(Action<IEndpointRouteBuilder, ConveyorOptions> map)
{
    public void Map(IEndpointRouteBuilder routes, ConveyorOptions options) => map(routes, options);
}
