using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Conveyor.Client;

namespace Conveyor.Cli;

/// <content><c>conveyor create namespace|key|secret</c>: what <c>apply</c> does not hold.</content>
internal sealed partial class CliCommands
{
    private Command CreateCommand()
    {
        var create = new Command("create", "Create a namespace or an API key (admin), or set a secret");

        var nsName = new Argument<string>("name") { Description = "The namespace (a DNS label)" };
        var ns = new Command("namespace", "Create a namespace (admin)") { nsName };
        ns.Aliases.Add("ns");
        ns.SetAction((parse, ct) => Execute(parse, async client =>
        {
            var created = await client.CreateNamespaceAsync(parse.GetValue(nsName)!, ct).ConfigureAwait(false);
            await Out.WriteLineAsync($"namespace/{created.Name} created").ConfigureAwait(false);
            return ExitCodes.Ok;
        }));
        create.Subcommands.Add(ns);

        var keyName = new Argument<string>("name") { Description = "Who or what holds the key (free text)" };
        var role = new Option<string>("--role") { Description = "admin, operator or viewer", Required = true };
        role.AcceptOnlyFromAmong("admin", "operator", "viewer");
        var scope = new Option<string[]>("--namespaces") { Description = "Namespaces the key may act in, comma-separated or repeated (* for all); required for operator and viewer", AllowMultipleArgumentsPerToken = true };
        var keyOutput = Output.Option("json", "yaml");
        var key = new Command("key", "Create an API key (admin); prints the key, which is shown only this once") { keyName, role, scope, keyOutput };
        key.SetAction((parse, ct) => Execute(parse, async client =>
        {
            var namespaces = (parse.GetValue(scope) ?? []).SelectMany(s => s.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToList();
            var entry = await client.CreateApiKeyAsync(
                new CreateApiKeyRequest { Name = parse.GetValue(keyName), Role = parse.GetValue(role), Namespaces = namespaces.Count == 0 ? null : namespaces }, ct).ConfigureAwait(false);
            var format = Output.Parse(parse.GetValue(keyOutput));
            if (format is OutputFormat.Json or OutputFormat.Yaml)
            {
                await Out.WriteAsync(Output.Document(JsonSerializer.SerializeToElement(entry), format)).ConfigureAwait(false);
                return ExitCodes.Ok;
            }

            // The key alone on stdout, so that K=$(conveyor create key …) works; the rest on stderr.
            await Out.WriteLineAsync(entry.Key).ConfigureAwait(false);
            await Err.WriteLineAsync($"key/{entry.Id} created ({entry.Role}{(entry.Namespaces.Count > 0 ? ", namespaces " + string.Join(",", entry.Namespaces) : "")}); the key above is not shown again").ConfigureAwait(false);
            return ExitCodes.Ok;
        }));
        create.Subcommands.Add(key);

        var secretName = new Argument<string>("name") { Description = "The secret's name (like an environment variable: DB_PASSWORD)" };
        var fromFile = new Option<string?>("--from-file") { Description = "Read the value from this file (as is)" };
        var fromLiteral = new Option<string?>("--from-literal") { Description = "The value itself (it stays in your shell's history)" };
        var fromStdin = new Option<bool>("--from-stdin") { Description = "Read the value from standard input (one trailing newline dropped)" };
        var secret = new Command("secret", "Create or replace a secret of the namespace (write-only: it is never shown again)") { secretName, fromFile, fromLiteral, fromStdin };
        secret.SetAction((parse, ct) => Execute(parse, async client =>
        {
            var sources = new[] { parse.GetValue(fromFile) is not null, parse.GetValue(fromLiteral) is not null, parse.GetValue(fromStdin) }.Count(b => b);
            if (sources != 1)
            {
                throw CliException.Usage("give the value with exactly one of --from-file, --from-literal or --from-stdin");
            }

            string value;
            if (parse.GetValue(fromFile) is { } file)
            {
                try
                {
                    value = await File.ReadAllTextAsync(CliConfig.ExpandHome(file, _cli.Environment), ct).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    throw CliException.Usage($"--from-file: cannot read {file}: {ex.Message}");
                }
            }
            else if (parse.GetValue(fromLiteral) is { } literal)
            {
                value = literal;
            }
            else
            {
                value = await _cli.Environment.StandardInput().ReadToEndAsync(ct).ConfigureAwait(false);
                value = value.EndsWith("\r\n", StringComparison.Ordinal) ? value[..^2] : value.EndsWith('\n') ? value[..^1] : value;
            }

            var stored = await client.PutSecretAsync(parse.GetValue(secretName)!, value, ct).ConfigureAwait(false);
            await Out.WriteLineAsync($"secret/{stored.Name} {(stored.Version == 1 ? "created" : "updated")} (version {stored.Version.ToString(CultureInfo.InvariantCulture)})").ConfigureAwait(false);
            return ExitCodes.Ok;
        }));
        create.Subcommands.Add(secret);
        return create;
    }
}
