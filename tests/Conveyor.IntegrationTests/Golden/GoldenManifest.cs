using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;

namespace Conveyor.IntegrationTests.Golden;

/// <summary>
/// What a golden snapshot holds besides its Redis keys: the settings it was written under and the ids of the objects in
/// it, so that the reading test knows what to look for. The keys in it are test keys of a throwaway host.
/// </summary>
public sealed record GoldenManifest
{
    /// <summary>File name of the manifest in a snapshot directory.</summary>
    public const string FileName = "manifest.json";

    /// <summary>File name of the Redis keys in a snapshot directory.</summary>
    public const string RedisFileName = "redis.json";

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>Commit of the engine that wrote the snapshot.</summary>
    public string Commit { get; init; } = "";

    /// <summary>When the snapshot was taken.</summary>
    public DateTimeOffset CapturedAt { get; init; }

    /// <summary>Orleans service and cluster id (grain state keys include it).</summary>
    public string ServiceId { get; init; } = "";

    /// <summary>The bootstrap admin key.</summary>
    public string AdminKey { get; init; } = "";

    /// <summary>An operator key scoped to <see cref="Namespace"/>, created through the API.</summary>
    public string OperatorKey { get; init; } = "";

    /// <summary><c>Conveyor:Secrets:Key</c>.</summary>
    public string SecretsKey { get; init; } = "";

    /// <summary>The namespace created for the snapshot.</summary>
    public string Namespace { get; init; } = "";

    /// <summary>Run ids by role: succeeded, failed, manual, inflight, queued, retrying, legacy.</summary>
    public Dictionary<string, Guid> Runs { get; init; } = [];

    /// <summary>Reads the manifest of a snapshot directory.</summary>
    public static async Task<GoldenManifest> LoadAsync(string directory) =>
        JsonSerializer.Deserialize<GoldenManifest>(await File.ReadAllTextAsync(Path.Combine(directory, FileName)))
            ?? throw new InvalidOperationException($"{directory} has no manifest");

    /// <summary>Writes the manifest into a snapshot directory.</summary>
    public Task SaveAsync(string directory) =>
        File.WriteAllTextAsync(Path.Combine(directory, FileName), JsonSerializer.Serialize(this, Indented) + "\n");
}

/// <summary>HTTP calls with an API key, asserting the status.</summary>
public sealed class GoldenClient(HttpClient http, string key)
{
    /// <summary>Sends a request as the key's holder; asserts <paramref name="expected"/> and returns the JSON body.</summary>
    public async Task<JsonElement> SendAsync(HttpMethod method, string path, object? body = null, HttpStatusCode expected = HttpStatusCode.OK, string? asKey = null, string? idempotencyKey = null)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", asKey ?? key);
        if (idempotencyKey is not null)
        {
            request.Headers.Add("Idempotency-Key", idempotencyKey);
        }

        using var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == expected, $"{method} {path}: expected {(int)expected}, got {(int)response.StatusCode}: {text}");
        return text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone();
    }

    /// <summary>GET, expecting 200.</summary>
    public Task<JsonElement> GetAsync(string path, string? asKey = null) => SendAsync(HttpMethod.Get, path, asKey: asKey);

    /// <summary>Polls a run until <paramref name="condition"/> holds.</summary>
    public async Task<JsonElement> WaitForRunAsync(string ns, Guid id, Func<JsonElement, bool> condition, string because)
    {
        JsonElement run = default;
        await Conveyor.Testing.Eventually.TrueAsync(
            async () => condition(run = await GetAsync($"/namespaces/{ns}/runs/{id}")),
            TimeSpan.FromSeconds(60),
            $"run {id}: {because}");
        return run;
    }

    /// <summary>The status of a run's step.</summary>
    public static string StepStatus(JsonElement run, string step) =>
        run.GetProperty("steps").EnumerateArray().First(s => s.GetProperty("id").GetString() == step).GetProperty("status").GetString()!;

    /// <summary>A run's step.</summary>
    public static JsonElement Step(JsonElement run, string step) =>
        run.GetProperty("steps").EnumerateArray().First(s => s.GetProperty("id").GetString() == step);
}
