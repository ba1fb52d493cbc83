using System.Net.Http.Json;
using System.Text.Json;
using Conveyor.Testing;

namespace Conveyor.Packaging.Tests;

/// <summary>The few API calls these tests make to a Conveyor engine under test, over plain HTTP.</summary>
internal sealed class ConveyorHttp(Uri baseAddress) : IDisposable
{
    private readonly HttpClient _http = new() { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(30) };

    public HttpClient Http => _http;

    public async Task WaitReadyAsync(string readyPath, ChildProcess process, TimeSpan timeout) =>
        await Eventually.TrueAsync(
            async () =>
            {
                if (process.HasExited)
                {
                    throw new InvalidOperationException($"{process.Description} exited:\n{process.Output}");
                }

                try
                {
                    using var response = await _http.GetAsync(readyPath);
                    return response.IsSuccessStatusCode;
                }
                catch (HttpRequestException)
                {
                    return false;
                }
            },
            timeout,
            $"{readyPath} should answer 200");

    public async Task<JsonElement> PostAsync(string path, object body)
    {
        using var response = await _http.PostAsJsonAsync(path, body);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"POST {path}: {(int)response.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    /// <summary>Defines a type and a one-step pipeline for <paramref name="driver"/>, creates a resource, and waits for its run to end.</summary>
    public async Task<JsonElement> RunOneStepPipelineAsync(string prefix, string type, string driver, TimeSpan timeout)
    {
        await PostAsync($"{prefix}/resource-definitions", new { name = type, version = "1.0.0", schema = new { type = "object" } });
        await PostAsync($"{prefix}/pipelines", new { name = type, resource = type, steps = new[] { new { id = "1", name = "build", driver } } });
        var created = await PostAsync($"{prefix}/resources", new { name = "web", resource = type, pipeline = type, spec = new { image = "nginx:1.27" } });
        var runId = created.GetProperty("runid").GetString()!;
        JsonElement run = default;
        await Eventually.TrueAsync(
            async () =>
            {
                run = JsonDocument.Parse(await _http.GetStringAsync($"{prefix}/runs/{runId}")).RootElement.Clone();
                return run.GetProperty("status").GetString() is "Succeeded" or "Failed" or "Cancelled" or "TimedOut";
            },
            timeout,
            $"run {runId} should end");
        return run;
    }

    public void Dispose() => _http.Dispose();
}
