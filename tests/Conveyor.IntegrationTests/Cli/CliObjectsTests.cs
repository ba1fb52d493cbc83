using System.Text.Json;
using Conveyor.Cli;

namespace Conveyor.IntegrationTests;

/// <summary><c>get</c>, <c>describe</c>, <c>delete</c> and <c>create</c> for every kind, in every output format, with paging.</summary>
[Collection(EngineCollection.Name)]
public sealed class CliObjectsTests(EngineFixture fx) : IDisposable
{
    private readonly CliRunner _cli = new(fx.Host.Address);

    public void Dispose() => _cli.Dispose();

    private static string Manifest(string type) => $$$"""
        kind: ResourceDefinition
        name: {{{type}}}
        version: "1.0.0"
        description: A type for the CLI tests
        schema: {type: object, properties: {image: {type: string}}, required: [image]}
        ---
        name: {{{type}}}
        resource: {{{type}}}
        steps:
          - {id: build, driver: nobody-{{{type}}}}
          - {id: test, driver: nobody-{{{type}}}, retry: {maxAttempts: 3, initialDelay: 2s}}
        ---
        kind: Resource
        name: web
        resource: {{{type}}}
        spec: {image: "nginx:1.27"}
        """;

    [Fact]
    public async Task Every_kind_can_be_listed_shown_described_and_deleted_in_every_output_format()
    {
        var type = EngineFixture.Unique("cliobj");
        var ns = EngineFixture.Unique("clins");
        Assert.Equal(0, (await _cli.RunWithInputAsync(Manifest(type), "apply", "-f", "-")).Code);
        var created = await _cli.RunAsync("create", "namespace", ns);
        Assert.Equal(($"namespace/{ns} created\n", ""), (created.Out, created.Err));
        var secret = await _cli.RunWithInputAsync("hunter2\n", "-n", ns, "create", "secret", "DB_PASSWORD", "--from-stdin");
        Assert.Equal("secret/DB_PASSWORD created (version 1)\n", secret.Out);
        var key = await _cli.RunAsync("create", "key", "ci-" + type, "--role", "operator", "--namespaces", ns);
        Assert.True(key.Code == 0, key.Err);
        var keyId = key.Err.Split(' ')[0].Split('/')[1];
        Assert.StartsWith($"cvk_{keyId}_", key.Out.Trim(), StringComparison.Ordinal);

        // One object of each kind, by name, as a table row, a name, JSON and YAML.
        (string Kind, string[] Key, string Name, string Column)[] objects =
        [
            ("definitions", [type], $"resource-definition/{type}", "A type for the CLI tests"),
            ("pipelines", [type], $"pipeline/{type}", "2"),
            ("resources", [type, "web"], $"resource/{type}/web", "1"),
            ("secrets", ["DB_PASSWORD"], "secret/DB_PASSWORD", "1"),
            ("keys", [keyId], $"key/{keyId}", "operator"),
            ("namespaces", [ns], $"namespace/{ns}", ns),
        ];
        foreach (var (kind, objectKey, name, column) in objects)
        {
            string[] scope = kind == "secrets" ? ["-n", ns] : [];
            var table = await _cli.RunAsync([.. scope, "get", kind, .. objectKey]);
            Assert.True(table.Code == 0, kind + ": " + table.Err);
            Assert.Equal(2, table.Out.Trim().Split('\n').Length);
            Assert.Contains(column, table.Out.Split('\n')[1], StringComparison.Ordinal);
            Assert.Equal(name + "\n", (await _cli.RunAsync([.. scope, "get", kind, .. objectKey, "-o", "name"])).Out);
            var json = JsonDocument.Parse((await _cli.RunAsync([.. scope, "get", kind, .. objectKey, "-o", "json"])).Out).RootElement;
            Assert.Equal(objectKey[^1], json.GetProperty(kind == "keys" ? "id" : "name").GetString());
            var yaml = (await _cli.RunAsync([.. scope, "get", kind, .. objectKey, "-o", "yaml"])).Out;
            Assert.Contains((kind == "keys" ? "id: " : "name: ") + objectKey[^1] + "\n", yaml, StringComparison.Ordinal);
            var wide = await _cli.RunAsync([.. scope, "get", kind, "-o", "wide"]);
            Assert.True(wide.Out.Split('\n')[0].Split(' ', StringSplitOptions.RemoveEmptyEntries).Length >= table.Out.Split('\n')[0].Split(' ', StringSplitOptions.RemoveEmptyEntries).Length);
            var described = await _cli.RunAsync([.. scope, "describe", kind, .. objectKey]);
            Assert.True(described.Code == 0, kind + ": " + described.Err);
            Assert.Contains(objectKey[^1], described.Out, StringComparison.Ordinal);
        }

        var pipeline = (await _cli.RunAsync("describe", "pipeline", type)).Out;
        Assert.Contains("Steps:\n  ID ", pipeline, StringComparison.Ordinal);
        Assert.Contains("Latest runs:\n  none", pipeline, StringComparison.Ordinal);
        var definition = (await _cli.RunAsync("describe", "definition", type)).Out;
        Assert.Contains("Schema:\n  type: object\n", definition, StringComparison.Ordinal);

        // Deletes, each said; a key is revoked, not deleted; a namespace goes last.
        Assert.Equal($"resource/{type}/web deleted\n", (await _cli.RunAsync("delete", "resources", type, "web")).Out);
        Assert.Equal($"pipeline/{type} deleted\n", (await _cli.RunAsync("delete", "pipeline", type)).Out);
        Assert.Equal($"resource-definition/{type} deleted\n", (await _cli.RunAsync("delete", "definitions", type)).Out);
        Assert.Equal("secret/DB_PASSWORD deleted\n", (await _cli.RunAsync("-n", ns, "delete", "secret", "DB_PASSWORD")).Out);
        Assert.Equal($"key/{keyId} revoked\n", (await _cli.RunAsync("delete", "key", keyId)).Out);
        Assert.Equal($"namespace/{ns} deleted\n", (await _cli.RunAsync("delete", "ns", ns)).Out);
        var gone = await _cli.RunAsync("get", "pipelines", type);
        Assert.Equal(ExitCodes.ApiError, gone.Code);
        Assert.StartsWith("error: 404 Not Found: ", gone.Err, StringComparison.Ordinal);
        Assert.Contains("\"revokedAt\"", (await _cli.RunAsync("get", "key", keyId, "-o", "json")).Out, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Listings_page_with_limit_and_cursor_and_all_reads_every_page()
    {
        var prefix = EngineFixture.Unique("clipage");
        for (var i = 0; i < 5; i++)
        {
            await fx.CreateDefinitionAsync($"{prefix}-{i}");
        }

        var first = await _cli.RunAsync("get", "definitions", "--prefix", prefix, "--limit", "2", "-o", "name");
        Assert.Equal([$"resource-definition/{prefix}-0", $"resource-definition/{prefix}-1"], first.Out.Trim().Split('\n'));
        var cursor = first.Err.Split("--cursor ")[1].Split(' ')[0];
        var second = await _cli.RunAsync("get", "definitions", "--prefix", prefix, "--limit", "2", "--cursor", cursor, "-o", "json");
        var page = JsonDocument.Parse(second.Out).RootElement;
        Assert.Equal([$"{prefix}-2", $"{prefix}-3"], page.GetProperty("items").EnumerateArray().Select(d => d.GetProperty("name").GetString()));
        Assert.Equal(JsonValueKind.String, page.GetProperty("nextCursor").ValueKind);
        var all = await _cli.RunAsync("get", "definitions", "--prefix", prefix, "--all", "-o", "name");
        Assert.Equal(5, all.Out.Trim().Split('\n').Length);
        Assert.Equal("", all.Err);
        Assert.Equal(ExitCodes.Usage, (await _cli.RunAsync("get", "definitions", "--all", "--limit", "2")).Code);
        var nothing = await _cli.RunAsync("get", "definitions", "--prefix", prefix + "-none");
        Assert.Equal(("", "No definitions found.\n"), (nothing.Out, nothing.Err));
    }

    [Fact]
    public async Task Runs_list_as_json_keeps_the_cursor_and_at_latest_names_the_newest_run()
    {
        var type = EngineFixture.Unique("clirun");
        await fx.CreateDefinitionAsync(type);
        await fx.Host.PostJsonAsync("/pipelines", new { name = type, resource = type, overridableParams = new[] { "n", "replicas", "tags" }, steps = new[] { new { id = "a", driver = "nobody-" + type } } });
        await fx.Host.PostJsonAsync("/resources", new { name = "web", resource = type, spec = new { image = "x" } });
        var runs = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            var trigger = await _cli.RunAsync("runs", "trigger", type, "-r", "web", "--param", $"n={i}", "--param", "replicas:=2", "-P", "tags:=[\"a\",\"b\"]", "-o", "name");
            Assert.True(trigger.Code == 0, trigger.Err);
            runs.Add(trigger.Out.Trim()["run/".Length..]);
        }

        var run = await fx.Host.GetJsonAsync($"/runs/{runs[2]}");
        Assert.Equal("""{"n":"2","replicas":2,"tags":["a","b"]}""", run.GetProperty("params").GetRawText());

        var list = JsonDocument.Parse((await _cli.RunAsync("runs", "list", "--pipeline", type, "--limit", "2", "-o", "json")).Out).RootElement;
        Assert.Equal([runs[2], runs[1]], list.GetProperty("items").EnumerateArray().Select(r => r.GetProperty("id").GetString()));
        Assert.Equal(JsonValueKind.String, list.GetProperty("nextCursor").ValueKind);
        var legacy = JsonDocument.Parse((await _cli.RunAsync("runs", "list", "--pipeline", type, "--limit", "2", "--json")).Out).RootElement;
        Assert.Equal(list.GetProperty("nextCursor").GetString(), legacy.GetProperty("nextCursor").GetString());
        Assert.Equal(3, (await _cli.RunAsync("get", "runs", "-p", type, "--all", "-o", "name")).Out.Trim().Split('\n').Length);

        Assert.Equal($"run/{runs[2]}\n", (await _cli.RunAsync("get", "run", $"{type}@latest", "-o", "name")).Out);
        Assert.Equal($"run/{runs[2]}\n", (await _cli.RunAsync("get", "run", "@latest", "-p", type, "-o", "name")).Out);
        Assert.Contains($"run {runs[2]}  pipeline {type}", (await _cli.RunAsync("runs", "show", $"{type}@latest")).Out, StringComparison.Ordinal);
        Assert.Contains("n: \"2\"", (await _cli.RunAsync("describe", "run", $"{type}@latest")).Out, StringComparison.Ordinal);
        foreach (var id in runs)
        {
            Assert.Equal($"run {id} Cancelled\n", (await _cli.RunAsync("runs", "cancel", id)).Out);
        }

        var none = await _cli.RunAsync("runs", "show", "nope@latest");
        Assert.Equal(ExitCodes.ApiError, none.Code);
        var bad = await _cli.RunAsync("runs", "trigger", type, "-r", "web", "--param", "novalue");
        Assert.Equal((ExitCodes.Usage, "error: --param 'novalue': expected key=value or key:=json\n"), (bad.Code, bad.Err));
    }

    [Fact]
    public async Task Apply_from_stdin_dry_run_writes_nothing_and_diff_shows_what_apply_would_change()
    {
        var type = EngineFixture.Unique("clidiff");
        var manifest = Manifest(type);

        var dry = await _cli.RunWithInputAsync(manifest, "apply", "--dry-run", "-f", "-");
        Assert.Equal($"resource-definition/{type} created (dry run)\npipeline/{type} created (dry run)\nresource/{type}/web created (dry run)\n", dry.Out);
        Assert.Equal(ExitCodes.ApiError, (await _cli.RunAsync("get", "definitions", type)).Code);
        var absent = await _cli.RunWithInputAsync(manifest, "diff", "-f", "-");
        Assert.Equal(ExitCodes.Differences, absent.Code);
        Assert.Contains($"+++ pipeline/{type} (<stdin> (document 2))\n", absent.Out, StringComparison.Ordinal);

        var applied = await _cli.RunWithInputAsync(manifest, "apply", "-f", "-");
        Assert.StartsWith($"resource-definition/{type} applied\npipeline/{type} applied\nresource/{type}/web created (announced to drivers; log id ", applied.Out, StringComparison.Ordinal);

        // What the server added (revision, ids, a resource's version, the retry policy's defaults) is no difference.
        var same = await _cli.RunWithInputAsync(manifest, "diff", "-f", "-");
        Assert.Equal((ExitCodes.Ok, ""), (same.Code, same.Out));
        var unchanged = await _cli.RunWithInputAsync(manifest, "apply", "--dry-run", "-f", "-");
        Assert.Equal($"resource-definition/{type} unchanged (dry run)\npipeline/{type} unchanged (dry run)\nresource/{type}/web unchanged (dry run)\n", unchanged.Out);

        var changed = manifest.Replace("nginx:1.27", "nginx:1.28", StringComparison.Ordinal).Replace("maxAttempts: 3", "maxAttempts: 4", StringComparison.Ordinal);
        var diff = await _cli.RunWithInputAsync(changed, "diff", "-f", "-");
        Assert.Equal(ExitCodes.Differences, diff.Code);
        Assert.Contains("-    maxAttempts: 3\n+    maxAttempts: 4\n", diff.Out, StringComparison.Ordinal);
        Assert.Contains("-  image: nginx:1.27\n+  image: nginx:1.28\n", diff.Out, StringComparison.Ordinal);
        Assert.DoesNotContain($"resource-definition/{type}", diff.Out, StringComparison.Ordinal);
        var dryChanged = await _cli.RunWithInputAsync(changed, "apply", "--dry-run", "-f", "-");
        Assert.Equal($"resource-definition/{type} unchanged (dry run)\npipeline/{type} configured (dry run)\nresource/{type}/web configured (dry run)\n", dryChanged.Out);
        Assert.Equal(1, (await fx.Host.GetJsonAsync($"/pipelines/{type}")).GetProperty("revision").GetInt32());

        Assert.Equal(ExitCodes.Usage, (await _cli.RunWithInputAsync("name: [", "apply", "-f", "-")).Code);
        Assert.Equal(ExitCodes.Usage, (await _cli.RunAsync("apply", "-f", "-", "-f", "-")).Code);
        Assert.Equal($"resource/{type}/web deleted\npipeline/{type} deleted\nresource-definition/{type} deleted\n", (await _cli.RunWithInputAsync(manifest, "delete", "-f", "-")).Out);
    }
}
