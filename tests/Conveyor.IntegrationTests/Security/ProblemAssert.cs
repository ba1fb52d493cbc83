using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Conveyor.IntegrationTests.Security;

/// <summary>Assertions on problem responses that say more than the status code.</summary>
public static class ProblemAssert
{
    /// <summary>The response is a problem of <paramref name="status"/> whose type ends with <paramref name="type"/>; returns it.</summary>
    public static async Task<JsonElement> IsAsync(HttpResponseMessage response, HttpStatusCode status, string type)
    {
        ArgumentNullException.ThrowIfNull(response);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {(int)status}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonDocument.Parse(text).RootElement.Clone();
        Assert.Equal("urn:conveyor:problem:" + type, problem.GetProperty("type").GetString());
        return problem;
    }

    /// <summary>A 400 validation problem that names <paramref name="field"/> in <c>errors</c>.</summary>
    public static async Task<JsonElement> NamesFieldAsync(HttpResponseMessage response, string field)
    {
        var problem = await IsAsync(response, HttpStatusCode.BadRequest, "validation");
        Assert.True(problem.TryGetProperty("errors", out var errors) && errors.TryGetProperty(field, out _), $"errors should name {field}: {problem}");
        return problem;
    }

    /// <summary>A problem of <paramref name="status"/> whose detail contains <paramref name="text"/>.</summary>
    public static async Task<JsonElement> SaysAsync(HttpResponseMessage response, HttpStatusCode status, string type, string text)
    {
        var problem = await IsAsync(response, status, type);
        Assert.Contains(text, problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        return problem;
    }
}
