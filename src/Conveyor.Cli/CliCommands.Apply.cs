using System.CommandLine;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Conveyor.Client;

namespace Conveyor.Cli;

/// <content><c>conveyor apply</c> (with <c>--dry-run</c>) and <c>conveyor diff</c>.</content>
internal sealed partial class CliCommands
{
    private static Option<string[]> FileOption() => new("--file", "-f")
    {
        Description = "A YAML or JSON file, a directory of them, or - for standard input (repeatable)",
        Required = true,
        AllowMultipleArgumentsPerToken = false,
    };

    private List<Manifest> LoadManifests(string[] paths)
    {
        if (paths.Count(p => p == "-") > 1)
        {
            throw CliException.Usage("standard input (-f -) can be read once");
        }

        return [.. Manifests.InApplyOrder(paths.SelectMany(p => Manifests.Load(p, _cli.Environment.StandardInput)).ToList())];
    }

    private Command ApplyCommand()
    {
        var file = FileOption();
        var dryRun = new Option<bool>("--dry-run") { Description = "Only say what would be created, changed or left unchanged (compared with the server); write nothing" };
        var command = new Command("apply", "Create or update resource definitions, pipelines and resources from YAML (multi-document) or JSON files") { file, dryRun };
        command.SetAction((parse, ct) => Execute(parse, async client =>
        {
            var manifests = LoadManifests(parse.GetValue(file)!);
            foreach (var m in manifests)
            {
                if (parse.GetValue(dryRun))
                {
                    var live = await GetLiveAsync(client, m, ct).ConfigureAwait(false);
                    var verdict = live is null ? "created" : SameContent(m, live.Value) ? "unchanged" : "configured";
                    await Out.WriteLineAsync($"{m.DisplayName} {verdict} (dry run)").ConfigureAwait(false);
                }
                else
                {
                    await ApplyAsync(client, m, ct).ConfigureAwait(false);
                }
            }

            return ExitCodes.Ok;
        }));
        return command;
    }

    private Command DiffCommand()
    {
        var file = FileOption();
        var command = new Command(
            "diff",
            "Show how the files differ from what the server holds, as a unified diff of normalized YAML (server-managed fields left out); exit code 0: no differences, 1: differences")
        {
            file,
        };
        command.SetAction((parse, ct) => Execute(parse, async client =>
        {
            var differs = false;
            foreach (var m in LoadManifests(parse.GetValue(file)!))
            {
                var live = await GetLiveAsync(client, m, ct).ConfigureAwait(false);
                var before = live is null ? "" : Yaml.Write(NormalizeLive(m, live.Value));
                var after = Yaml.Write(Normalize(m.Kind, m.Body));
                var diff = TextDiff.Unified(before, after, $"{m.DisplayName} (live{(live is null ? ": absent" : "")})", $"{m.DisplayName} ({m.Origin})");
                if (diff.Length > 0)
                {
                    differs = true;
                    await Out.WriteAsync(diff).ConfigureAwait(false);
                }
            }

            return differs ? ExitCodes.Differences : ExitCodes.Ok;
        }));
        return command;
    }

    private static async Task<JsonElement?> GetLiveAsync(ConveyorClient client, Manifest m, CancellationToken ct)
    {
        try
        {
            return await client.SendJsonAsync(HttpMethod.Get, m.LivePath, cancellationToken: ct).ConfigureAwait(false);
        }
        catch (ConveyorApiException ex) when (ex.Status == HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    private static bool SameContent(Manifest m, JsonElement live) =>
        JsonNode.DeepEquals(NormalizeLive(m, live), Normalize(m.Kind, m.Body));

    /// <summary>
    /// Members the server fills in with defaults when a document leaves them out; in these objects, a member the
    /// file does not mention is not a difference (a retry policy's <c>maxDelay</c>, <c>multiplier</c>, <c>jitter</c>).
    /// </summary>
    private static readonly string[] DefaultedObjects = ["retry"];

    /// <summary>The live object as the file would say it: normalized, and without the defaults the file left to the server.</summary>
    private static JsonNode? NormalizeLive(Manifest m, JsonElement live)
    {
        var normalized = Normalize(m.Kind, JsonNode.Parse(live.GetRawText()));
        DropDefaults(normalized, Normalize(m.Kind, m.Body));
        return normalized;
    }

    private static void DropDefaults(JsonNode? live, JsonNode? file)
    {
        switch (live, file)
        {
            case (JsonObject l, JsonObject f):
                foreach (var (key, value) in l.ToList())
                {
                    if (f[key] is JsonObject fo && value is JsonObject lo && DefaultedObjects.Contains(key, StringComparer.Ordinal))
                    {
                        foreach (var member in lo.Select(p => p.Key).Where(k => !fo.ContainsKey(k)).ToList())
                        {
                            lo.Remove(member);
                        }
                    }

                    DropDefaults(value, f[key]);
                }

                break;
            case (JsonArray la, JsonArray fa):
                for (var i = 0; i < Math.Min(la.Count, fa.Count); i++)
                {
                    DropDefaults(la[i], fa[i]);
                }

                break;
        }
    }

    /// <summary>
    /// What a document says, without what the server manages (revisions, versions, ids, timestamps, driver results,
    /// webhook URLs; webhook secrets, which are write-only), with keys sorted and empty values (null, "", {}) dropped,
    /// so that a file and the object it wrote compare equal.
    /// </summary>
    private static JsonNode? Normalize(ManifestKind kind, JsonNode? document)
    {
        if (document?.DeepClone() is not JsonObject obj)
        {
            return document?.DeepClone();
        }

        foreach (var name in new[] { "kind", "unchanged", "revision", "createdAt", "updatedAt" })
        {
            obj.Remove(name);
        }

        if (kind is ManifestKind.Resource or ManifestKind.ResourceDefinition)
        {
            obj.Remove("id");
        }

        if (kind == ManifestKind.Resource && obj["metadata"] is JsonObject metadata)
        {
            foreach (var key in metadata.Select(p => p.Key).Where(k => k == "version" || k.StartsWith("driverresults.", StringComparison.Ordinal)).ToList())
            {
                metadata.Remove(key);
            }
        }

        if (kind == ManifestKind.Pipeline && obj["webhooks"] is JsonArray hooks)
        {
            foreach (var hook in hooks.OfType<JsonObject>())
            {
                hook.Remove("url");
                hook.Remove("secret");
            }
        }

        return Clean(obj);
    }

    private static JsonNode? Clean(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject o:
                var sorted = new JsonObject();
                foreach (var (key, value) in o.OrderBy(p => p.Key, StringComparer.Ordinal).ToList())
                {
                    var cleaned = Clean(value?.DeepClone());
                    if (cleaned is null || (cleaned is JsonValue v && v.GetValueKind() == JsonValueKind.String && v.GetValue<string>().Length == 0) || cleaned is JsonObject { Count: 0 })
                    {
                        continue;
                    }

                    sorted[key] = cleaned;
                }

                return sorted;
            case JsonArray a:
                return new JsonArray([.. a.Select(i => Clean(i?.DeepClone()))]);
            default:
                return node;
        }
    }

    private async Task ApplyAsync(ConveyorClient client, Manifest m, CancellationToken ct)
    {
        var body = JsonSerializer.SerializeToElement(m.Body);
        switch (m.Kind)
        {
            case ManifestKind.ResourceDefinition:
                var definition = await client.SendJsonAsync(HttpMethod.Post, "resource-definitions/apply", body, ct).ConfigureAwait(false);
                await Out.WriteLineAsync($"{m.DisplayName} {(IsUnchanged(definition) ? "unchanged" : "applied")}").ConfigureAwait(false);
                break;
            case ManifestKind.Pipeline:
                var pipeline = await client.SendJsonAsync(HttpMethod.Post, "pipelines", body, ct).ConfigureAwait(false);
                await Out.WriteLineAsync($"{m.DisplayName} {(IsUnchanged(pipeline) ? "unchanged" : "applied")}").ConfigureAwait(false);
                break;
            default:
                try
                {
                    var created = await client.SendJsonAsync(HttpMethod.Post, "resources", body, ct).ConfigureAwait(false);
                    // Without a pipeline there is no run: the id only names the drivers' log of the announcement.
                    var runId = created is { } c && c.TryGetProperty("runid", out var r) && r.ValueKind == JsonValueKind.String && r.GetString() is { Length: > 0 } id
                        && Guid.TryParse(id, out var g) && g != Guid.Empty
                        ? m.Body["pipeline"] is { } p && p.GetValueKind() == JsonValueKind.String && p.GetValue<string>().Length > 0
                            ? $" (run {id})"
                            : $" (announced to drivers; log id {id})"
                        : "";
                    await Out.WriteLineAsync($"{m.DisplayName} created{runId}").ConfigureAwait(false);
                }
                catch (ConveyorApiException ex) when (ex.Status == HttpStatusCode.Conflict)
                {
                    var updated = await client.SendJsonAsync(HttpMethod.Put, m.LivePath, body, ct).ConfigureAwait(false);
                    // The server keeps a resource's version in metadata["version"], as the original does.
                    var version = updated is { } u && u.TryGetProperty("metadata", out var md) && md.ValueKind == JsonValueKind.Object
                        && md.TryGetProperty("version", out var v) ? $" (version {v.GetString()})" : "";
                    await Out.WriteLineAsync($"{m.DisplayName} {(IsUnchanged(updated) ? "unchanged" : "updated")}{version}").ConfigureAwait(false);
                }

                break;
        }
    }

    /// <summary>Whether the server answered that the write changed nothing (no new revision or version).</summary>
    private static bool IsUnchanged(JsonElement? response) =>
        response is { ValueKind: JsonValueKind.Object } r && r.TryGetProperty("unchanged", out var u) && u.ValueKind == JsonValueKind.True;
}
