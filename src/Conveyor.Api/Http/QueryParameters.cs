using System.Globalization;
using System.Reflection;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Routing;

namespace Conveyor.Api.Http;

/// <summary>
/// Names the query parameter a handler could not bind. When a value does not parse (<c>limit=abc</c>, a number beyond
/// Int32), ASP.NET Core answers 400 before any handler or filter runs, without saying which parameter; this reads the
/// endpoint's handler signature and finds it, for every route at once.
/// </summary>
internal static class QueryParameters
{
    /// <summary>The first query value that does not parse as its parameter's type, with a message; null when none.</summary>
    public static (string Name, string Message)? FirstUnparsable(Endpoint endpoint, HttpRequest request)
    {
        if (endpoint.Metadata.GetMetadata<MethodInfo>() is not { } handler)
        {
            return null;
        }

        var routeValues = (endpoint as RouteEndpoint)?.RoutePattern.Parameters.Select(p => p.Name).ToHashSet(StringComparer.OrdinalIgnoreCase) ?? [];
        foreach (var parameter in handler.GetParameters())
        {
            if (parameter.Name is null || parameter.GetCustomAttributes().Any(a => a is FromServicesAttribute or AsParametersAttribute or FromBodyAttribute or FromHeaderAttribute or FromRouteAttribute))
            {
                continue;
            }

            var name = parameter.GetCustomAttribute<FromQueryAttribute>()?.Name ?? parameter.Name;
            var type = Nullable.GetUnderlyingType(parameter.ParameterType) ?? parameter.ParameterType;
            if (routeValues.Contains(name) || Kind(type) is not { } kind)
            {
                continue;
            }

            var value = request.Query[name].ToString();
            if (value.Length > 0 && !Parses(type, value))
            {
                return (name, $"'{name}' must be {kind} (got '{Grains.Abstractions.Names.Truncate(value)}')");
            }
        }

        return null;
    }

    private static string? Kind(Type type) => type switch
    {
        _ when type == typeof(int) => $"a whole number from {int.MinValue} to {int.MaxValue}",
        _ when type == typeof(long) => $"a whole number from {long.MinValue} to {long.MaxValue}",
        _ when type == typeof(ulong) => $"a whole number from 0 to {ulong.MaxValue}",
        _ when type == typeof(double) => "a number",
        _ when type == typeof(bool) => "true or false",
        _ when type == typeof(Guid) => "a UUID",
        _ when type == typeof(DateTimeOffset) => "an ISO 8601 date and time",
        _ when type.IsEnum => "one of " + string.Join(", ", Enum.GetNames(type)),
        _ => null,
    };

    private static bool Parses(Type type, string value) => type switch
    {
        _ when type == typeof(int) => int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out _),
        _ when type == typeof(long) => long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out _),
        _ when type == typeof(ulong) => ulong.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out _),
        _ when type == typeof(double) => double.TryParse(value, NumberStyles.Float | NumberStyles.AllowThousands, CultureInfo.InvariantCulture, out _),
        _ when type == typeof(bool) => bool.TryParse(value, out _),
        _ when type == typeof(Guid) => Guid.TryParse(value, out _),
        _ when type == typeof(DateTimeOffset) => DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.None, out _),
        _ when type.IsEnum => Enum.TryParse(type, value, ignoreCase: true, out _),
        _ => true,
    };
}
