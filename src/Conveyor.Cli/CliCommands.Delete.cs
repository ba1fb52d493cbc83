using System.CommandLine;
using System.Net;
using Conveyor.Client;

namespace Conveyor.Cli;

/// <content><c>conveyor delete &lt;kind&gt; &lt;name…&gt;</c> and <c>conveyor delete -f &lt;file&gt;</c>.</content>
internal sealed partial class CliCommands
{
    private Command DeleteCommand()
    {
        var files = new Option<string[]>("--file", "-f") { Description = "Delete what these YAML or JSON files (or directories, or - for stdin) describe" };
        var delete = new Command("delete", "Delete definitions, pipelines, resources and secrets, revoke keys, retire namespaces — by name, or what files describe") { files };
        delete.SetAction((parse, ct) => Execute(parse, async client =>
        {
            var paths = parse.GetValue(files) ?? [];
            if (paths.Length == 0)
            {
                throw CliException.Usage("name what to delete (conveyor delete pipelines ship) or give files (-f app.yaml)");
            }

            // Resources first, then pipelines, then definitions: the reverse of apply's order.
            var manifests = Manifests.InApplyOrder(paths.SelectMany(p => Manifests.Load(p, _cli.Environment.StandardInput)).ToList()).Reverse().ToList();
            var failed = false;
            foreach (var m in manifests)
            {
                failed |= !await DeleteOneAsync(client, m.LivePath, m.DisplayName, "deleted", ct).ConfigureAwait(false);
            }

            return failed ? ExitCodes.ApiError : ExitCodes.Ok;
        }));

        foreach (var kind in Kind.All.Where(k => k != Kind.Runs))
        {
            var command = new Command(kind.Plural, kind == Kind.Keys ? "Revoke API keys (at once, on every silo)" : $"Delete {kind.Plural}");
            foreach (var alias in kind.Aliases)
            {
                command.Aliases.Add(alias);
            }

            Argument<string>? type = kind == Kind.Resources ? new Argument<string>("type") { Description = "The resources' type" } : null;
            if (type is not null)
            {
                command.Arguments.Add(type);
            }

            var names = new Argument<string[]>(kind == Kind.Keys ? "ids" : "names") { Description = kind == Kind.Keys ? "Key ids" : "Names", Arity = ArgumentArity.OneOrMore };
            command.Arguments.Add(names);
            var cascade = kind == Kind.Namespaces ? new Option<bool>("--cascade") { Description = "Cancel the namespace's unfinished runs first (without it, a namespace with runs is not deleted)" } : null;
            if (cascade is not null)
            {
                command.Options.Add(cascade);
            }

            command.SetAction((parse, ct) => Execute(parse, async client =>
            {
                var failed = false;
                foreach (var name in parse.GetValue(names)!)
                {
                    var key = type is null ? new[] { name } : [parse.GetValue(type)!, name];
                    var path = kind.ItemPath(key) + (cascade is not null && parse.GetValue(cascade) ? "?cascade=true" : "");
                    failed |= !await DeleteOneAsync(client, path, kind.Singular + "/" + string.Join('/', key), kind == Kind.Keys ? "revoked" : "deleted", ct).ConfigureAwait(false);
                }

                return failed ? ExitCodes.ApiError : ExitCodes.Ok;
            }));
            delete.Subcommands.Add(command);
        }

        return delete;
    }

    /// <summary>Deletes one object; a refusal is reported and the next one is still tried.</summary>
    private async Task<bool> DeleteOneAsync(ConveyorClient client, string path, string display, string done, CancellationToken ct)
    {
        try
        {
            await client.SendJsonAsync(HttpMethod.Delete, path, cancellationToken: ct).ConfigureAwait(false);
            await Out.WriteLineAsync($"{display} {done}").ConfigureAwait(false);
            return true;
        }
        catch (ConveyorApiException ex) when (ex.Status is not (HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden))
        {
            await Err.WriteLineAsync($"error: {display}: {Describe(ex)}").ConfigureAwait(false);
            return false;
        }
    }
}
