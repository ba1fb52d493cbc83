using System.Text.Json;
using static Conveyor.Cli.Output;

namespace Conveyor.Cli;

/// <summary>
/// What the CLI can get, describe and delete: each kind's names, routes, table columns and how it names one object.
/// </summary>
/// <param name="Plural">The command word (<c>pipelines</c>).</param>
/// <param name="Singular">The kind in output (<c>pipeline/ship</c>).</param>
/// <param name="Aliases">Other command words (<c>pipeline</c>, <c>pl</c>).</param>
/// <param name="Route">The collection's route (<c>pipelines</c>).</param>
/// <param name="Key">The members that name one object, in route order (<c>resource</c>, <c>name</c> for resources).</param>
/// <param name="Columns">Default table columns.</param>
/// <param name="Wide">Columns of <c>-o wide</c>.</param>
/// <param name="Paged">Whether the listing has cursors (definitions, pipelines, resources, runs) or comes whole.</param>
internal sealed record Kind(string Plural, string Singular, string[] Aliases, string Route, string[] Key, Column[] Columns, Column[] Wide, bool Paged)
{
    public static readonly Kind Definitions = new(
        "definitions", "resource-definition", ["definition", "defs", "rd"], "resource-definitions", ["name"],
        [new("NAME", e => Str(e, "name")), new("VERSION", e => Str(e, "version")), new("DESCRIPTION", e => Str(e, "description"))],
        [new("NAME", e => Str(e, "name")), new("VERSION", e => Str(e, "version")), new("ID", e => Str(e, "id")), new("DESCRIPTION", e => Str(e, "description"))],
        Paged: true);

    public static readonly Kind Pipelines = new(
        "pipelines", "pipeline", ["pipeline", "pl"], "pipelines", ["name"],
        [new("NAME", e => Str(e, "name")), new("RESOURCE", e => Str(e, "resource")), new("STEPS", e => Count(e, "steps")), new("REVISION", e => Str(e, "revision"))],
        [
            new("NAME", e => Str(e, "name")), new("RESOURCE", e => Str(e, "resource")), new("STEPS", e => Count(e, "steps")), new("REVISION", e => Str(e, "revision")),
            new("VERSION", e => Str(e, "version")), new("CONCURRENCY", e => Str(e, "concurrency")), new("SCHEDULES", e => Count(e, "schedules")),
            new("WEBHOOKS", e => Count(e, "webhooks")), new("DESCRIPTION", e => Str(e, "description")),
        ],
        Paged: true);

    public static readonly Kind Resources = new(
        "resources", "resource", ["resource", "res"], "resources", ["resource", "name"],
        [new("TYPE", e => Str(e, "resource")), new("NAME", e => Str(e, "name")), new("PIPELINE", e => Str(e, "pipeline")), new("VERSION", e => Member(e, "metadata", "version"))],
        [
            new("TYPE", e => Str(e, "resource")), new("NAME", e => Str(e, "name")), new("PIPELINE", e => Str(e, "pipeline")), new("VERSION", e => Member(e, "metadata", "version")),
            new("ID", e => Str(e, "id")), new("SPEC", e => e.TryGetProperty("spec", out var s) ? s.GetRawText() : ""),
        ],
        Paged: true);

    public static readonly Kind Runs = new(
        "runs", "run", ["run"], "runs", ["id"],
        [
            new("ID", e => Str(e, "id")), new("PIPELINE", e => Str(e, "pipeline")), new("RESOURCE", e => $"{Str(e, "resourceType")}/{Str(e, "resourceName")}"),
            new("STATUS", e => Str(e, "status")), new("CREATED", e => Time(e, "createdAt")), new("MESSAGE", e => Str(e, "message")),
        ],
        [
            new("ID", e => Str(e, "id")), new("PIPELINE", e => Str(e, "pipeline")), new("REVISION", e => Str(e, "pipelineRevision")),
            new("RESOURCE", e => $"{Str(e, "resourceType")}/{Str(e, "resourceName")}"), new("STATUS", e => Str(e, "status")), new("CREATED", e => Time(e, "createdAt")),
            new("FINISHED", e => Time(e, "finishedAt")), new("MESSAGE", e => Str(e, "message")),
        ],
        Paged: true);

    public static readonly Kind Secrets = new(
        "secrets", "secret", ["secret"], "secrets", ["name"],
        [new("NAME", e => Str(e, "name")), new("VERSION", e => Str(e, "version")), new("UPDATED", e => Time(e, "updatedAt"))],
        [new("NAME", e => Str(e, "name")), new("VERSION", e => Str(e, "version")), new("UPDATED", e => Time(e, "updatedAt"))],
        Paged: false);

    public static readonly Kind Keys = new(
        "keys", "key", ["key"], "keys", ["id"],
        [new("ID", e => Str(e, "id")), new("NAME", e => Str(e, "name")), new("ROLE", e => Str(e, "role")), new("NAMESPACES", e => Str(e, "namespaces")), new("CREATED", e => Time(e, "createdAt"))],
        [
            new("ID", e => Str(e, "id")), new("NAME", e => Str(e, "name")), new("ROLE", e => Str(e, "role")), new("NAMESPACES", e => Str(e, "namespaces")),
            new("CREATED", e => Time(e, "createdAt")), new("REVOKED", e => Time(e, "revokedAt")),
        ],
        Paged: false);

    public static readonly Kind Namespaces = new(
        "namespaces", "namespace", ["namespace", "ns"], "namespaces", ["name"],
        [new("NAME", e => Str(e, "name")), new("CREATED", e => Time(e, "createdAt"))],
        [new("NAME", e => Str(e, "name")), new("CREATED", e => Time(e, "createdAt"))],
        Paged: false);

    /// <summary>Every kind, in the order help lists them.</summary>
    public static IReadOnlyList<Kind> All { get; } = [Definitions, Pipelines, Resources, Runs, Secrets, Keys, Namespaces];

    /// <summary>How the CLI names one object: <c>pipeline/ship</c>, <c>resource/app/web</c>.</summary>
    public string NameOf(JsonElement item) => Singular + "/" + string.Join('/', Key.Select(k => Str(item, k)));

    /// <summary>The route of one object.</summary>
    public string ItemPath(IReadOnlyList<string> key) => Route + "/" + string.Join('/', key.Select(Uri.EscapeDataString));

    /// <summary>The route of one object, from its JSON.</summary>
    public string ItemPath(JsonElement item) => ItemPath(Key.Select(k => Str(item, k)).ToList());

    /// <summary>Table columns for a format.</summary>
    public IReadOnlyList<Column> ColumnsFor(OutputFormat format) => format == OutputFormat.Wide ? Wide : Columns;
}
