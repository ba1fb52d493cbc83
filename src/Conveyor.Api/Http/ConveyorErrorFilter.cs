using Conveyor.Grains.Abstractions;
using Microsoft.AspNetCore.Http;

namespace Conveyor.Api.Http;

/// <summary>Turns the engine's client errors into ProblemDetails, in one place for every Conveyor endpoint.</summary>
internal sealed class ConveyorErrorFilter : IEndpointFilter
{
    /// <inheritdoc />
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        try
        {
            return await next(context).ConfigureAwait(false);
        }
        catch (ConveyorException ex)
        {
            return Problems.From(ex);
        }
        catch (PayloadTooLargeException ex)
        {
            return Problems.TooLarge(ex.Limit);
        }
        catch (UnsupportedMediaTypeException ex)
        {
            return Problems.UnsupportedMediaType(ex.ContentType);
        }
    }
}
