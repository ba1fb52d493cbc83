using System.Text.Json;

namespace Conveyor.Driver.Sdk;

/// <summary>The outcome of a reconcile, published to the engine as <c>driverresult</c>.</summary>
/// <param name="Success">Whether the driver reconciled the resource.</param>
/// <param name="Message">Human-readable outcome.</param>
/// <param name="Data">Output data; downstream pipeline steps receive it.</param>
public sealed record DriverResult(bool Success, string Message, JsonElement? Data = null)
{
    /// <summary>A successful result.</summary>
    /// <param name="message">Human-readable outcome.</param>
    /// <param name="data">Output data: a <see cref="JsonElement"/>, or any object, serialized with System.Text.Json.</param>
    public static DriverResult Ok(string message = "", object? data = null) => new(true, message, ToElement(data));

    /// <summary>A failed result.</summary>
    public static DriverResult Fail(string message) => new(false, message);

    private static JsonElement? ToElement(object? data) => data switch
    {
        null => null,
        JsonElement element => element.Clone(),
        JsonDocument document => document.RootElement.Clone(),
        _ => JsonSerializer.SerializeToElement(data, data.GetType(), SerializerOptions),
    };

    private static readonly JsonSerializerOptions SerializerOptions = new(JsonSerializerDefaults.Web);
}
