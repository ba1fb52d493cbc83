using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Conveyor.Client;
using Conveyor.Contracts;

namespace Conveyor.Cli;

/// <content><c>conveyor get &lt;kind&gt; [name…]</c>: listings with paging, and objects by name, in every output format.</content>
internal sealed partial class CliCommands
{
    private Command GetCommand()
    {
        var get = new Command("get", "List the objects of a kind (every page, or one page of runs), or show some by name");
        foreach (var kind in Kind.All)
        {
            get.Subcommands.Add(GetKindCommand(kind));
        }

        return get;
    }

    /// <summary><c>get &lt;kind&gt;</c>; also <c>runs list</c>, under its own <paramref name="name"/>.</summary>
    private Command GetKindCommand(Kind kind, string? name = null)
    {
        var command = new Command(name ?? kind.Plural, name is null ? $"List {kind.Plural}, or show the named ones" : $"List {kind.Plural} (newest first), or show the named ones");
        foreach (var alias in name is null ? kind.Aliases : [])
        {
            command.Aliases.Add(alias);
        }

        var output = Output.Option("wide", "json", "yaml", "name");
        command.Options.Add(output);
        var json = new Option<bool>("--json") { Description = "The same as -o json", Hidden = true };
        command.Options.Add(json);
        Argument<string?>? type = null;
        if (kind == Kind.Resources)
        {
            type = new Argument<string?>("type") { Description = "Only resources of this type (needed to name resources)", Arity = ArgumentArity.ZeroOrOne };
            command.Arguments.Add(type);
        }

        var names = new Argument<string[]>(kind == Kind.Runs ? "runs" : "names")
        {
            Description = kind == Kind.Runs ? "Run ids, @latest or <pipeline>@latest" : "Names to show (default: list them all)",
            Arity = ArgumentArity.ZeroOrMore,
        };
        command.Arguments.Add(names);
        var listing = ListingOptions.Add(command, kind);
        command.SetAction((parse, ct) => Execute(parse, async client =>
        {
            var format = parse.GetValue(json) ? OutputFormat.Json : Output.Parse(parse.GetValue(output));
            var keys = parse.GetValue(names) ?? [];
            var resourceType = type is null ? null : parse.GetValue(type);
            if (keys.Length == 0)
            {
                var (items, next) = await ListAsync(client, kind, listing, parse, resourceType, ct).ConfigureAwait(false);
                await PrintListAsync(kind, items, next, format).ConfigureAwait(false);
                return ExitCodes.Ok;
            }

            if (kind == Kind.Resources && resourceType is null)
            {
                throw CliException.Usage("name resources with their type: conveyor get resources <type> <name>");
            }

            var found = new List<JsonElement>();
            foreach (var key in keys)
            {
                var path = kind == Kind.Runs
                    ? kind.ItemPath([(await ResolveRunAsync(client, key, parse.GetValue(listing.Pipeline), ct).ConfigureAwait(false)).ToString("D")])
                    : kind.ItemPath(kind == Kind.Resources ? [resourceType!, key] : [key]);
                found.Add(await GetJsonAsync(client, path, ct).ConfigureAwait(false));
            }

            if (found.Count == 1 && format is OutputFormat.Json or OutputFormat.Yaml)
            {
                await Out.WriteAsync(Output.Document(found[0], format)).ConfigureAwait(false);
            }
            else
            {
                await PrintListAsync(kind, found, null, format).ConfigureAwait(false);
            }

            return ExitCodes.Ok;
        }));
        return command;
    }

    private static async Task<JsonElement> GetJsonAsync(ConveyorClient client, string path, CancellationToken ct) =>
        await client.SendJsonAsync(HttpMethod.Get, path, cancellationToken: ct).ConfigureAwait(false)
            ?? throw new ConveyorApiException($"The Conveyor API returned an empty body for GET /{path}.");

    /// <summary>One page (<c>--limit</c>, <c>--cursor</c>; runs by default) or every page (<c>--all</c>; other kinds by default).</summary>
    private static async Task<(List<JsonElement> Items, string? Next)> ListAsync(
        ConveyorClient client, Kind kind, ListingOptions listing, ParseResult parse, string? resourceType, CancellationToken ct)
    {
        var query = new List<(string Name, string? Value)>();
        var path = kind.Route;
        if (kind == Kind.Resources && resourceType is not null)
        {
            path += "/" + Uri.EscapeDataString(resourceType);
        }

        if (listing.Prefix is not null && parse.GetValue(listing.Prefix) is { } prefix)
        {
            if (kind == Kind.Resources && resourceType is null)
            {
                throw CliException.Usage("--prefix needs a resource type: conveyor get resources <type> --prefix <p>");
            }

            query.Add(("prefix", prefix));
        }

        if (listing.Filter is not null)
        {
            query.Add((listing.FilterName!, parse.GetValue(listing.Filter)));
        }

        if (kind == Kind.Runs)
        {
            if (parse.GetValue(listing.Pipeline) is { } p)
            {
                path = $"pipelines/{Uri.EscapeDataString(p)}/runs";
            }

            query.Add(("status", parse.GetValue(listing.Status)?.ToString()));
        }

        if (!kind.Paged)
        {
            var whole = await GetJsonAsync(client, Query(path, query), ct).ConfigureAwait(false);
            return (whole.TryGetProperty("items", out var all) ? [.. all.EnumerateArray()] : [], null);
        }

        var everything = parse.GetValue(listing.All);
        var limit = parse.GetValue(listing.Limit);
        var cursor = parse.GetValue(listing.Cursor);
        if (everything && (limit is not null || cursor is not null))
        {
            throw CliException.Usage("--all reads every page; it does not go with --limit or --cursor");
        }

        // Runs are many: one page unless asked for all. The other kinds list whole unless a page is asked for.
        var onePage = !everything && (kind == Kind.Runs || limit is not null || cursor is not null);
        var items = new List<JsonElement>();
        do
        {
            var pageQuery = new List<(string Name, string? Value)>(query)
            {
                ("limit", (limit ?? (onePage ? null : (int?)100))?.ToString(CultureInfo.InvariantCulture)),
                ("cursor", cursor),
            };
            var page = await GetJsonAsync(client, Query(path, pageQuery), ct).ConfigureAwait(false);
            if (page.TryGetProperty("items", out var pageItems))
            {
                items.AddRange(pageItems.EnumerateArray());
            }

            cursor = page.TryGetProperty("nextCursor", out var next) && next.ValueKind == JsonValueKind.String ? next.GetString() : null;
        }
        while (!onePage && cursor is not null);
        return (items, cursor);
    }

    private static string Query(string path, IEnumerable<(string Name, string? Value)> parameters)
    {
        var query = string.Join('&', parameters.Where(p => !string.IsNullOrEmpty(p.Value)).Select(p => p.Name + "=" + Uri.EscapeDataString(p.Value!)));
        return query.Length == 0 ? path : path + "?" + query;
    }

    private async Task PrintListAsync(Kind kind, List<JsonElement> items, string? next, OutputFormat format)
    {
        switch (format)
        {
            case OutputFormat.Json or OutputFormat.Yaml:
                await Out.WriteAsync(Output.Document(Output.Page(items, next), format)).ConfigureAwait(false);
                return;
            case OutputFormat.Name:
                foreach (var item in items)
                {
                    await Out.WriteLineAsync(kind.NameOf(item)).ConfigureAwait(false);
                }

                break;
            default:
                if (items.Count == 0)
                {
                    await Err.WriteLineAsync($"No {kind.Plural} found.").ConfigureAwait(false);
                }
                else
                {
                    await Out.WriteAsync(Output.Table(kind.ColumnsFor(format), items)).ConfigureAwait(false);
                }

                break;
        }

        if (next is not null)
        {
            await Err.WriteLineAsync($"More {kind.Plural}: add --cursor {next} for the next page, or --all for every page.").ConfigureAwait(false);
        }
    }

    /// <summary>A run id, or <c>@latest</c> (the newest run, of <paramref name="pipeline"/> when given) or <c>&lt;pipeline&gt;@latest</c>.</summary>
    private static async Task<Guid> ResolveRunAsync(ConveyorClient client, string reference, string? pipeline, CancellationToken ct)
    {
        if (Guid.TryParse(reference, out var id))
        {
            return id;
        }

        if (!reference.EndsWith("@latest", StringComparison.Ordinal))
        {
            throw CliException.Usage($"'{reference}' is not a run: give its id (a UUID such as 3f2b8c1e-…), @latest or <pipeline>@latest");
        }

        if (reference.Length > "@latest".Length)
        {
            pipeline = reference[..^"@latest".Length];
        }

        var page = await client.ListRunsAsync(pipeline, limit: 1, cancellationToken: ct).ConfigureAwait(false);
        return page.Items.Count > 0
            ? page.Items[0].Id
            : throw CliException.NotFound(pipeline is null ? "there are no runs yet" : $"pipeline {pipeline} has no runs yet");
    }

    /// <summary>The listing options of a kind's <c>get</c>.</summary>
    private sealed class ListingOptions
    {
        public Option<string?>? Prefix { get; private init; }

        public Option<string?>? Filter { get; private init; }

        public string? FilterName { get; private init; }

        public Option<string?> Pipeline { get; } = new("--pipeline", "-p") { Description = "Only this pipeline's runs (and @latest of it)" };

        public Option<RunStatus?> Status { get; } = new("--status") { Description = "Only runs in this status" };

        public Option<int?> Limit { get; } = new("--limit") { Description = "One page of at most this many (runs: 1-100, default 20; others: 1-500)" };

        public Option<string?> Cursor { get; } = new("--cursor") { Description = "The page that starts here (the nextCursor of the page before)" };

        public Option<bool> All { get; } = new("--all") { Description = "Every page" };

        public static ListingOptions Add(Command command, Kind kind)
        {
            var options = kind == Kind.Definitions || kind == Kind.Pipelines || kind == Kind.Resources
                ? new ListingOptions
                {
                    Prefix = new Option<string?>("--prefix") { Description = "Only names that start with this" },
                    Filter = kind == Kind.Pipelines ? new Option<string?>("--resource") { Description = "Only pipelines of this resource type" }
                        : kind == Kind.Resources ? new Option<string?>("--pipeline") { Description = "Only resources that name this pipeline" } : null,
                    FilterName = kind == Kind.Pipelines ? "resource" : kind == Kind.Resources ? "pipeline" : null,
                }
                : new ListingOptions();
            foreach (var option in new Option?[] { options.Prefix, options.Filter })
            {
                if (option is not null)
                {
                    command.Options.Add(option);
                }
            }

            if (kind == Kind.Runs)
            {
                command.Options.Add(options.Pipeline);
                command.Options.Add(options.Status);
            }

            if (kind.Paged)
            {
                command.Options.Add(options.Limit);
                command.Options.Add(options.Cursor);
                command.Options.Add(options.All);
            }

            return options;
        }
    }
}
