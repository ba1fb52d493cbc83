using System.CommandLine;
using System.Text.Json.Nodes;

namespace Conveyor.Cli;

/// <content><c>conveyor config</c>: the contexts of the config file.</content>
internal sealed partial class CliCommands
{
    private Command ConfigCommand()
    {
        var config = new Command(
            "config",
            "Named contexts (server, namespace, key file, timeout) in the config file: $CONVEYOR_CONFIG, else ~/.config/conveyor/config.yaml");

        var view = new Command("view", "Print the config file (it holds key file paths, never keys)");
        view.SetAction(async (parse, ct) => await Run(async () =>
        {
            var file = CliConfig.Load(_cli.Environment);
            await Out.WriteLineAsync("# " + file.Path).ConfigureAwait(false);
            if (File.Exists(file.Path))
            {
                await Out.WriteAsync(await File.ReadAllTextAsync(file.Path, ct).ConfigureAwait(false)).ConfigureAwait(false);
            }

            return ExitCodes.Ok;
        }).ConfigureAwait(false));
        config.Subcommands.Add(view);

        var list = new Command("get-contexts", "List the contexts; * marks the current one");
        list.SetAction(async (parse, ct) => await Run(async () =>
        {
            var file = CliConfig.Load(_cli.Environment);
            var rows = file.Contexts.Select(c => System.Text.Json.JsonSerializer.SerializeToElement(new JsonObject
            {
                ["current"] = c.Key == file.CurrentContext ? "*" : "",
                ["name"] = c.Key,
                ["server"] = c.Value.Server ?? "",
                ["namespace"] = c.Value.Namespace ?? "",
                ["keyFile"] = c.Value.KeyFile ?? "",
                ["timeout"] = c.Value.Timeout ?? "",
            })).ToList();
            if (rows.Count == 0)
            {
                await Err.WriteLineAsync($"No contexts in {file.Path}; add one with: conveyor config set-context <name> --server <url>").ConfigureAwait(false);
                return ExitCodes.Ok;
            }

            Column[] columns =
            [
                new("CURRENT", e => Output.Str(e, "current")), new("NAME", e => Output.Str(e, "name")), new("SERVER", e => Output.Str(e, "server")),
                new("NAMESPACE", e => Output.Str(e, "namespace")), new("KEY FILE", e => Output.Str(e, "keyFile")), new("TIMEOUT", e => Output.Str(e, "timeout")),
            ];
            await Out.WriteAsync(Output.Table(columns, rows)).ConfigureAwait(false);
            return ExitCodes.Ok;
        }).ConfigureAwait(false));
        config.Subcommands.Add(list);

        var current = new Command("current-context", "Print the current context's name");
        current.SetAction(async (parse, ct) => await Run(async () =>
        {
            var file = CliConfig.Load(_cli.Environment);
            if (file.CurrentContext is null)
            {
                throw CliException.Usage($"no current-context in {file.Path}");
            }

            await Out.WriteLineAsync(file.CurrentContext).ConfigureAwait(false);
            return ExitCodes.Ok;
        }).ConfigureAwait(false));
        config.Subcommands.Add(current);

        var useName = new Argument<string>("name") { Description = "The context to use from now on" };
        var use = new Command("use-context", "Make a context the current one") { useName };
        use.SetAction(async (parse, ct) => await Run(async () =>
        {
            var file = CliConfig.Load(_cli.Environment);
            var name = parse.GetValue(useName)!;
            if (!file.Contexts.ContainsKey(name))
            {
                throw CliException.Usage($"no context '{name}' in {file.Path} (see 'conveyor config get-contexts')");
            }

            file.CurrentContext = name;
            file.Save();
            await Out.WriteLineAsync($"Switched to context \"{name}\".").ConfigureAwait(false);
            return ExitCodes.Ok;
        }).ConfigureAwait(false));
        config.Subcommands.Add(use);

        var setName = new Argument<string>("name") { Description = "The context to create or change" };
        var keyFile = new Option<string?>("--key-file") { Description = "A file holding the API key (relative paths are relative to the config file)" };
        var set = new Command(
            "set-context",
            "Create a context or change its settings, given with --server, --namespace, --key-file and --timeout (the first context becomes current); an empty value removes a setting")
        {
            setName, keyFile,
        };
        set.SetAction(async (parse, ct) => await Run(async () =>
        {
            var file = CliConfig.Load(_cli.Environment);
            var name = parse.GetValue(setName)!;
            var old = file.Contexts.GetValueOrDefault(name) ?? new ContextEntry(null, null, null, null);
            string? Pick(string? value, string? previous) => value is null ? previous : value.Length == 0 ? null : value;
            var entry = new ContextEntry(
                Pick(parse.GetValue(_server), old.Server),
                Pick(parse.GetValue(_namespace), old.Namespace),
                Pick(parse.GetValue(keyFile), old.KeyFile),
                Pick(parse.GetValue(_timeout), old.Timeout));
            if (entry.Server is { } url && (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https")))
            {
                throw CliException.Usage($"--server '{url}' is not an http(s) URL");
            }

            if (entry.Timeout is { } t && !Durations.TryParse(t, out _))
            {
                throw CliException.Usage($"--timeout '{t}' is not a duration (30s, 2m, 0 for none)");
            }

            var created = !file.Contexts.ContainsKey(name);
            file.Contexts[name] = entry;
            file.CurrentContext ??= name;
            file.Save();
            await Out.WriteLineAsync($"Context \"{name}\" {(created ? "created" : "modified")}{(file.CurrentContext == name ? " (current)" : "")}.").ConfigureAwait(false);
            return ExitCodes.Ok;
        }).ConfigureAwait(false));
        config.Subcommands.Add(set);

        var deleteName = new Argument<string>("name") { Description = "The context to remove" };
        var delete = new Command("delete-context", "Remove a context") { deleteName };
        delete.SetAction(async (parse, ct) => await Run(async () =>
        {
            var file = CliConfig.Load(_cli.Environment);
            var name = parse.GetValue(deleteName)!;
            if (!file.Contexts.Remove(name))
            {
                throw CliException.Usage($"no context '{name}' in {file.Path}");
            }

            if (file.CurrentContext == name)
            {
                file.CurrentContext = null;
            }

            file.Save();
            await Out.WriteLineAsync($"Deleted context \"{name}\".").ConfigureAwait(false);
            return ExitCodes.Ok;
        }).ConfigureAwait(false));
        config.Subcommands.Add(delete);
        return config;
    }

    /// <summary>A command that needs no server: only its usage errors to map.</summary>
    private async Task<int> Run(Func<Task<int>> body)
    {
        try
        {
            return await body().ConfigureAwait(false);
        }
        catch (CliException ex)
        {
            await Err.WriteLineAsync("error: " + ex.Message).ConfigureAwait(false);
            return ex.ExitCode;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            await Err.WriteLineAsync("error: " + ex.Message).ConfigureAwait(false);
            return ExitCodes.Usage;
        }
    }
}
