using System.Text.Json;
using System.Text.Json.Nodes;
using YamlDotNet.Core;

namespace Conveyor.Cli;

/// <summary>One named context: where an engine is, which namespace, which key.</summary>
/// <param name="Server">API root.</param>
/// <param name="Namespace">Namespace; null for the server's default.</param>
/// <param name="KeyFile">A file holding the API key (the key itself is never stored in the config file).</param>
/// <param name="Timeout">Request timeout, as typed (<c>30s</c>).</param>
internal sealed record ContextEntry(string? Server, string? Namespace, string? KeyFile, string? Timeout);

/// <summary>
/// The config file: named contexts and the current one. <c>$CONVEYOR_CONFIG</c>, else
/// <c>$XDG_CONFIG_HOME/conveyor/config.yaml</c>, else <c>~/.config/conveyor/config.yaml</c>:
/// <code>
/// current-context: local
/// contexts:
///   local:
///     server: http://127.0.0.1:8080
///     namespace: team-a
///     key-file: ~/.config/conveyor/local.key
///     timeout: 30s
/// </code>
/// </summary>
internal sealed class CliConfig
{
    private static readonly string[] Fields = ["server", "namespace", "key-file", "timeout"];

    private CliConfig(string path, string? current, SortedDictionary<string, ContextEntry> contexts)
    {
        Path = path;
        CurrentContext = current;
        Contexts = contexts;
    }

    /// <summary>Where the file is (it need not exist).</summary>
    public string Path { get; }

    /// <summary>The context used when none is named.</summary>
    public string? CurrentContext { get; set; }

    /// <summary>Contexts by name.</summary>
    public SortedDictionary<string, ContextEntry> Contexts { get; }

    /// <summary>The config file's path for <paramref name="env"/>.</summary>
    public static string PathFor(CliEnvironment env)
    {
        ArgumentNullException.ThrowIfNull(env);
        if (env.Get("CONVEYOR_CONFIG") is { } explicitPath)
        {
            return ExpandHome(explicitPath, env);
        }

        var home = env.Get("XDG_CONFIG_HOME") ?? System.IO.Path.Combine(env.HomeDirectory, ".config");
        return System.IO.Path.Combine(home, "conveyor", "config.yaml");
    }

    /// <summary>Whether the config file exists.</summary>
    public static bool Exists(CliEnvironment env) => File.Exists(PathFor(env));

    /// <summary><c>~/x</c> under the home directory.</summary>
    public static string ExpandHome(string path, CliEnvironment env)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(env);
        return path == "~" ? env.HomeDirectory
            : path.StartsWith("~/", StringComparison.Ordinal) ? System.IO.Path.Combine(env.HomeDirectory, path[2..])
            : path;
    }

    /// <summary>A path from the file, relative to the file's directory unless absolute or under <c>~</c>.</summary>
    public string ResolvePath(string path) =>
        path.StartsWith('~') || System.IO.Path.IsPathRooted(path) ? path : System.IO.Path.Combine(System.IO.Path.GetDirectoryName(Path) ?? ".", path);

    /// <summary>Reads the config file; an absent file is an empty config.</summary>
    /// <exception cref="CliException">The file is not a valid config (exit code 2).</exception>
    public static CliConfig Load(CliEnvironment env)
    {
        var path = PathFor(env);
        var contexts = new SortedDictionary<string, ContextEntry>(StringComparer.Ordinal);
        if (!File.Exists(path))
        {
            return new CliConfig(path, null, contexts);
        }

        JsonNode? root;
        try
        {
            var documents = Yaml.Parse(File.ReadAllText(path));
            root = documents.Count == 0 ? new JsonObject() : documents[0];
        }
        catch (YamlException ex)
        {
            throw CliException.Usage($"{path}: not valid YAML at line {ex.Start.Line}: {ex.InnerException?.Message ?? ex.Message}");
        }
        catch (IOException ex)
        {
            throw CliException.Usage($"{path}: {ex.Message}");
        }

        if (root is not JsonObject file)
        {
            throw CliException.Usage($"{path}: expected 'current-context' and 'contexts'");
        }

        foreach (var (key, _) in file)
        {
            if (key is not ("current-context" or "contexts"))
            {
                throw CliException.Usage($"{path}: unknown setting '{key}' (expected current-context, contexts)");
            }
        }

        if (file["contexts"] is JsonObject entries)
        {
            foreach (var (name, node) in entries)
            {
                if (node is not JsonObject entry)
                {
                    throw CliException.Usage($"{path}: context '{name}' must be a mapping of {string.Join(", ", Fields)}");
                }

                foreach (var (key, _) in entry)
                {
                    if (!Fields.Contains(key, StringComparer.Ordinal))
                    {
                        throw CliException.Usage($"{path}: context '{name}': unknown setting '{key}' (expected {string.Join(", ", Fields)})");
                    }
                }

                contexts[name] = new ContextEntry(Text(entry["server"]), Text(entry["namespace"]), Text(entry["key-file"]), Text(entry["timeout"]));
            }
        }
        else if (file["contexts"] is not null)
        {
            throw CliException.Usage($"{path}: 'contexts' must be a mapping of names to contexts");
        }

        return new CliConfig(path, Text(file["current-context"]), contexts);
    }

    /// <summary>Writes the file (creating its directory), readable by its owner only.</summary>
    public void Save()
    {
        var contexts = new JsonObject();
        foreach (var (name, c) in Contexts)
        {
            var entry = new JsonObject();
            Add(entry, "server", c.Server);
            Add(entry, "namespace", c.Namespace);
            Add(entry, "key-file", c.KeyFile);
            Add(entry, "timeout", c.Timeout);
            contexts[name] = entry;
        }

        var root = new JsonObject();
        Add(root, "current-context", CurrentContext);
        root["contexts"] = contexts;
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(Path)!);
        File.WriteAllText(Path, Yaml.Write(root));
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(Path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }

    private static void Add(JsonObject obj, string name, string? value)
    {
        if (value is not null)
        {
            obj[name] = value;
        }
    }

    private static string? Text(JsonNode? node) => node switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        _ => node.ToJsonString(),
    };
}
