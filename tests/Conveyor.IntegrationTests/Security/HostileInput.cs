using System.Globalization;
using System.Reflection;
using System.Text;
using CsCheck;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Routing.Patterns;

namespace Conveyor.IntegrationTests.Security;

/// <summary>One generated request: everything needed to send it and to print it when it breaks something.</summary>
public sealed record HostileRequest(
    string Method,
    string PathAndQuery,
    byte[]? Body,
    string? ContentType,
    bool Chunked,
    string? Authorization,
    IReadOnlyList<KeyValuePair<string, string>> Headers,
    string Endpoint,
    string BodyKind)
{
    /// <summary>What a failure report shows: enough to replay the request by hand.</summary>
    public override string ToString()
    {
        var body = Body is null ? "(none)" : Body.Length > 300 ? $"{Body.Length} bytes: {Preview(Body, 300)}…" : Preview(Body, 300);
        var headers = string.Join("; ", Headers.Select(h => $"{h.Key}: {Truncate(h.Value, 80)}"));
        return $"{Method} {Truncate(PathAndQuery, 300)} [endpoint {Endpoint}; body {BodyKind}; content-type {ContentType ?? "(none)"}{(Chunked ? ", chunked" : "")}; " +
            $"auth {Truncate(Authorization ?? "(none)", 30)}; {headers}] {body}";
    }

    private static string Preview(byte[] body, int max) =>
        Encoding.UTF8.GetString(body, 0, Math.Min(body.Length, max)).Replace("\n", "\\n", StringComparison.Ordinal);

    private static string Truncate(string s, int max) => s.Length <= max ? s : s[..max] + $"…({s.Length})";
}

/// <summary>What the generator needs to know about the host: its endpoints and the objects seeded in it.</summary>
public sealed class HostileWorld
{
    public required IReadOnlyList<RouteEndpoint> Endpoints { get; init; }

    /// <summary>Existing values per route parameter name (namespace, name, type, id, runid, …).</summary>
    public required IReadOnlyDictionary<string, string[]> Existing { get; init; }

    /// <summary>Authorization header values, the admin key's first.</summary>
    public required IReadOnlyList<string?> Authorizations { get; init; }

    /// <summary>The host's body size limit.</summary>
    public required int BodyLimit { get; init; }

    /// <summary>The JSON depth limit of request bodies.</summary>
    public const int DepthLimit = 64;
}

/// <summary>
/// CsCheck generators of hostile requests against every mapped endpoint: bad route values and query strings,
/// malformed, mistyped, too deep and too large bodies, wrong content types, wrong methods and random paths.
/// </summary>
public static class HostileInput
{
    private static readonly string[] Methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "FOO"];

    private static readonly string[] BadNames =
    [
        "UPPER", "under_score", "-lead", "trail-", "dots.in.it", "*", ">", "a b", "..", ".", "ü-nicode", "日本語", "💥", "%", "%ZZ",
        "%2F", "%00", "%0A", "null", "0", "-1", "99999999999999999999", "'", "\"", "{}", "[]", "a*b", "a>b", "\t", "con", "--", "a--b",
        "x;drop", "<script>", "%E2%80%AE", "%C0%AF",
    ];

    private static readonly string[] ContentTypes =
    [
        "text/plain", "application/xml", "application/json; charset=utf-16", "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x", "application/merge-patch+json", "*/*", "json", ";;;", "application/json; charset=\"", "image/png",
    ];

    private static readonly string[] Malformed =
    [
        "{", "}", "[", "{\"name\":", "{\"name\":\"x\",}", "{'name':'x'}", "{name:\"x\"}", "{\"name\":\"x\"} trailing", "/* c */ {}", "{\"a\":NaN}",
        "{\"a\":Infinity}", "{\"a\":1e999999}", "{\"a\":-0x1}", "{\"a\":\"\u0001\"}", "{\"a\":\"\\ud800\"}", "{\"a\":\"\\u12\"}", "nul", "tru", "\"unterminated",
        "{\"name\":\"x\",\"name\":\"y\"}", "\uFEFF{}", "{}{}", "[1,]", "{\"a\":01}", "{\"a\":.5}", "{\"a\" \"b\"}", "  ", "\0",
    ];

    private static readonly string[] QueryValues =
    [
        "", "1", "0", "-5", "101", "1001", "abc", "1e9", "99999999999999999999", "true", "TRUE", "yes", "Running", "running", "Succeeded", "Nope",
        "svg", "mermaid", "dot", "text", "json", "xml", "%00", "日本", "💥", "a b", "18446744073709551615", "18446744073709551616", "-0", "0x10", "1.5",
        "*", ">", "..", "%ZZ",
    ];

    /// <summary>CsCheck's weighted choice, with the generators' type spelled once.</summary>
    private static Gen<T> Freq<T>(params (int Weight, Gen<T> Gen)[] choices) =>
        Gen.Frequency(choices.Select(c => (c.Weight, (IGen<T>)c.Gen)).ToArray());

    /// <summary>Every request kind, weighted: most aim at a mapped endpoint, some at random paths.</summary>
    public static Gen<HostileRequest> Requests(HostileWorld world)
    {
        var endpoint = Gen.Int[0, world.Endpoints.Count - 1].Select(i => world.Endpoints[i]);
        var auth = Freq(
            (14, Gen.Const(world.Authorizations[0])),
            (6, Gen.Int[0, world.Authorizations.Count - 1].Select(i => world.Authorizations[i])));
        Gen<HostileRequest> aimed =
            from e in endpoint
            from method in Freq((6, Gen.Const<string?>((string?)null)), (1, Gen.OneOf(Methods).Select(m => (string?)m)))
            from path in PathFor(e, world)
            from query in QueryFor(e)
            from body in BodyFor(e, world)
            from contentType in ContentType()
            from chunked in Gen.Int[0, 9].Select(i => i == 0)
            from headers in Headers()
            from authorization in auth
            let verb = method ?? DefaultMethod(e)
            select new HostileRequest(verb, path + query, body.Bytes, body.Bytes is null ? null : contentType, chunked, authorization, headers, Describe(e), body.Kind);
        Gen<HostileRequest> random =
            from method in Gen.OneOf(Methods)
            from path in RandomPath()
            from body in Freq((3, Gen.Const<(byte[]?, string)>(((byte[]?)null, "none"))), (1, MalformedBody()))
            from authorization in auth
            select new HostileRequest(method, path, body.Item1, body.Item1 is null ? null : "application/json", false, authorization, [], "(random path)", body.Item2);
        return Freq((9, aimed), (1, random));
    }

    private static string DefaultMethod(RouteEndpoint endpoint) =>
        endpoint.Metadata.GetMetadata<HttpMethodMetadata>()?.HttpMethods is [var first, ..] ? first : "GET";

    /// <summary>Method and route pattern of an endpoint, e.g. <c>POST /namespaces/{namespace}/pipelines/</c>.</summary>
    public static string Describe(RouteEndpoint endpoint) =>
        $"{string.Join(",", endpoint.Metadata.GetMetadata<HttpMethodMetadata>()?.HttpMethods ?? ["*"])} {endpoint.RoutePattern.RawText}";

    /// <summary>The query parameters a handler binds: its simple parameters that are not route values.</summary>
    public static IReadOnlyList<string> QueryParameters(RouteEndpoint endpoint)
    {
        var method = endpoint.Metadata.OfType<MethodInfo>().FirstOrDefault();
        if (method is null)
        {
            return [];
        }

        var route = endpoint.RoutePattern.Parameters.Select(p => p.Name).ToHashSet(StringComparer.OrdinalIgnoreCase);
        return method.GetParameters()
            .Where(p => p.Name is not null && !route.Contains(p.Name) && IsSimple(p.ParameterType) && p.GetCustomAttributes().All(a => a.GetType().Name != "AsParametersAttribute"))
            .Select(p => p.Name!)
            .ToList();
    }

    private static bool IsSimple(Type type)
    {
        var t = Nullable.GetUnderlyingType(type) ?? type;
        return t == typeof(string) || t.IsPrimitive || t == typeof(Guid) || t.IsEnum;
    }

    private static Gen<string> PathFor(RouteEndpoint endpoint, HostileWorld world)
    {
        var segments = endpoint.RoutePattern.PathSegments;
        var parts = segments.Select(segment =>
        {
            var gens = segment.Parts.Select(part => part switch
            {
                RoutePatternLiteralPart literal => Freq((30, Gen.Const(literal.Content)), (1, Gen.Const(literal.Content.ToUpperInvariant())), (1, Gen.Const(literal.Content + "x"))),
                RoutePatternParameterPart parameter => RouteValue(parameter.Name, world),
                RoutePatternSeparatorPart separator => Gen.Const(separator.Content),
                _ => Gen.Const(""),
            }).ToArray();
            return gens.Aggregate(Gen.Const(""), (acc, g) => acc.Select(g, (a, b) => a + b));
        }).ToArray();
        var joined = parts.Aggregate(Gen.Const(""), (acc, g) => acc.Select(g, (a, b) => a + "/" + b));
        return joined.Select(Gen.Int[0, 19], (p, i) => (p.Length == 0 ? "/" : p) + (i == 0 ? "/" : i == 1 ? "//" : ""));
    }

    /// <summary>A value for one route parameter: an existing object's, a valid unknown one, or an invalid one.</summary>
    private static Gen<string> RouteValue(string name, HostileWorld world)
    {
        var existing = world.Existing.TryGetValue(name, out var values) && values.Length > 0 ? Gen.OneOf(values) : ValidName();
        var valid = name is "id" or "runid"
            ? Freq((3, Gen.Guid.Select(g => g.ToString())), (1, Gen.Guid.Select(g => g.ToString("N"))), (1, Gen.Guid.Select(g => g.ToString("B"))), (1, ValidName()))
            : name == "version" ? Gen.Int[-3, 1_000_000].Select(i => i.ToString(CultureInfo.InvariantCulture)) : ValidName();
        var invalid = Freq(
            (4, Gen.OneOf(BadNames)),
            (2, Gen.Int[64, 3000].Select(n => new string('a', n))),
            (1, Gen.Int[2000, 9000].Select(n => new string('b', n))),
            (2, Gen.String[Gen.Char[(char)1, (char)0xFFFD], 1, 40].Select(Uri.EscapeDataString)),
            (1, Gen.Guid.Select(g => g.ToString()[..30])),
            (1, Gen.Guid.Select(g => g + "x")));
        return Freq((5, existing), (3, valid), (4, invalid));
    }

    private static Gen<string> ValidName() =>
        Gen.String[Gen.Char["abcdefghijklmnopqrstuvwxyz0123456789"], 1, 20].Select(s => "z" + s);

    private static Gen<string> QueryFor(RouteEndpoint endpoint)
    {
        var names = QueryParameters(endpoint).Concat(["junk", "limit", "cursor"]).Distinct().ToArray();
        var value = Freq(
            (6, Gen.OneOf(QueryValues)),
            (1, Gen.Int[300, 9000].Select(n => new string('q', n))),
            (1, Gen.Guid.Select(g => g.ToString())),
            (2, Gen.String[Gen.Char[(char)1, (char)0xFFFD], 0, 20]));
        var pair = Gen.OneOf(names).Select(value, (n, v) => $"{n}={Uri.EscapeDataString(v)}");
        return Freq(
            (4, Gen.Const("")),
            (5, pair.Array[1, 4].Select(p => "?" + string.Join("&", p))),
            (1, Gen.OneOf("?", "?&&", "?=", "?a", "?limit", "?limit=1&limit=2", "?%ZZ=1", "?cursor=%00")));
    }

    private static Gen<KeyValuePair<string, string>[]> Headers()
    {
        var header = Freq(
            (2, Gen.OneOf("Last-Event-ID", "Idempotency-Key", "X-GitHub-Delivery").Select(
                Freq((3, Gen.OneOf(QueryValues)), (1, Gen.Int[250, 2000].Select(n => new string('k', n)))), (k, v) => new KeyValuePair<string, string>(k, v))),
            (1, Gen.OneOf("sha256=", "sha256=zz", "sha1=00", "sha256=" + new string('0', 64), "").Select(v => new KeyValuePair<string, string>("X-Hub-Signature-256", v))),
            (1, Gen.OneOf("text/plain", "text/event-stream", "application/xml", "*/*;q=abc", "text/plain;q=0.5, application/json;q=0.9", "").Select(v => new KeyValuePair<string, string>("Accept", v))));
        return Freq((3, Gen.Const(Array.Empty<KeyValuePair<string, string>>())), (2, header.Array[1, 3]));
    }

    private static Gen<string?> ContentType() =>
        Freq((12, Gen.Const<string?>("application/json")), (3, Gen.Const<string?>((string?)null)), (4, Gen.OneOf(ContentTypes).Select(c => (string?)c)));

    /// <summary>A body for the endpoint: none, or one of many ways of getting it wrong (and now and then right).</summary>
    private static Gen<(byte[]? Bytes, string Kind)> BodyFor(RouteEndpoint endpoint, HostileWorld world)
    {
        var template = Template(endpoint);
        var utf8 = (string s, string kind) => ((byte[]?)Encoding.UTF8.GetBytes(s), kind);
        return Freq(
            (3, Gen.Const<(byte[]?, string)>(((byte[]?)null, "none"))),
            (1, Gen.Const<(byte[]?, string)>(([], "empty"))),
            (3, Gen.Const(utf8(template, "template"))),
            (6, MutatedTemplate(template).Select(m => utf8(m.Json, m.Kind))),
            (3, JsonValue(3).Select(j => utf8(j, "random json"))),
            (3, MalformedBody()),
            (2, Gen.Int[HostileWorld.DepthLimit + 1, 3000].Select(Gen.Bool, (d, arrays) => utf8(Deep(d, arrays), $"depth {d}"))),
            (2, Gen.Int[HostileWorld.DepthLimit - 8, HostileWorld.DepthLimit].Select(d => utf8(DeepInside(template, d), $"depth {d} inside"))),
            (2, Gen.Int[world.BodyLimit + 1, world.BodyLimit * 3].Select(n => utf8(Oversized(template, n), $"oversized {n}"))),
            (1, Gen.Byte.Array[1, 200].Select(b => ((byte[]?)b, "binary"))));
    }

    private static Gen<(byte[]? Bytes, string Kind)> MalformedBody() =>
        Freq(
            (3, Gen.OneOf(Malformed).Select(m => ((byte[]?)Encoding.UTF8.GetBytes(m), "malformed"))),
            (1, Gen.OneOf<byte[]>([0xC3, 0x28], [0xFF, 0xFE, 0x7B, 0x00, 0x7D, 0x00], [0x7B, 0x22, 0x61, 0x22, 0x3A, 0x22, 0xED, 0xA0, 0x80, 0x22, 0x7D]).Select(b => ((byte[]?)b, "invalid utf-8"))));

    /// <summary>A plausible body per route, so mutations reach validation deeper than the JSON reader.</summary>
    private static string Template(RouteEndpoint endpoint)
    {
        var pattern = endpoint.RoutePattern.RawText ?? "";
        static bool Ends(string p, string suffix) => p.TrimEnd('/').EndsWith(suffix, StringComparison.Ordinal);
        return pattern switch
        {
            _ when Ends(pattern, "/resource-definitions") || Ends(pattern, "/resource-definitions/apply") || Ends(pattern, "/resource-definitions/{name}") =>
                """{"name":"zdef","version":"1.0.0","description":"d","schema":{"type":"object","properties":{"image":{"type":"string"}},"required":["image"]}}""",
            _ when Ends(pattern, "/pipelines") || Ends(pattern, "/pipelines/{name}") =>
                """{"name":"zpipe","resource":"app","variables":{"A":"b"},"retry":{"maxAttempts":2},"timeout":"300ms","steps":[{"id":"1","driver":"nobody","dependsOn":[],"params":{"x":1},"secrets":["DB_PASSWORD"]}]}""",
            _ when Ends(pattern, "/pipelines/{name}/runs") => """{"resource":"web","priority":3,"params":{"channel":"beta"}}""",
            _ when Ends(pattern, "/resources") || Ends(pattern, "/resources/{type}/{name}") =>
                """{"name":"zres","resource":"app","pipeline":"ship","metadata":{"a":"b"},"spec":{"image":"nginx"}}""",
            _ when Ends(pattern, "/cancel") => """{"reason":"because"}""",
            _ when Ends(pattern, "/logs") => """{"runid":"zrun","driver":"d","pipeline":"p","timestamp":"1714650000","message":"m","labels":{"step":"1"}}""",
            _ when Ends(pattern, "/keys") => """{"name":"k","role":"viewer","namespaces":["default"]}""",
            _ when Ends(pattern, "/namespaces") => """{"name":"zns"}""",
            _ when Ends(pattern, "/secrets/{name}") => """{"value":"s3cr3t"}""",
            _ when pattern.Contains("/hooks/", StringComparison.Ordinal) => """{"ref":"refs/heads/main","repository":{"name":"web"}}""",
            _ => """{"a":1}""",
        };
    }

    /// <summary>
    /// The template with one change: a member removed, given a value of the wrong kind, a bad name, a long or odd
    /// string. Changing kind (string to number, object to array) keeps the body syntactically valid.
    /// </summary>
    private static Gen<(string Json, string Kind)> MutatedTemplate(string template)
    {
        var node = System.Text.Json.Nodes.JsonNode.Parse(template)!;
        var paths = Paths(node, "").ToArray();
        var replacement = Freq(
            (3, JsonValue(2)),
            (2, Gen.OneOf(BadNames).Select(b => System.Text.Json.JsonSerializer.Serialize(b))),
            (1, Gen.Int[200, 5000].Select(n => System.Text.Json.JsonSerializer.Serialize(new string('s', n)))),
            (1, Gen.String[Gen.Char[(char)0, (char)0xFFFF], 0, 30].Select(s => System.Text.Json.JsonSerializer.Serialize(s))));
        return Gen.OneOf(paths).Select(replacement, Gen.Int[0, 3], (path, value, op) =>
        {
            var copy = System.Text.Json.Nodes.JsonNode.Parse(template)!;
            var (parent, key, index) = Locate(copy, path);
            if (op == 0)
            {
                if (key is not null)
                {
                    ((System.Text.Json.Nodes.JsonObject)parent!).Remove(key);
                }
                else
                {
                    ((System.Text.Json.Nodes.JsonArray)parent!).RemoveAt(index);
                }

                return (copy.ToJsonString(), $"without {path}");
            }

            var replaced = System.Text.Json.Nodes.JsonNode.Parse(value);
            if (key is not null)
            {
                parent![key] = replaced;
            }
            else
            {
                parent![index] = replaced;
            }

            return (copy.ToJsonString(), $"{path} = {(value.Length > 40 ? value[..40] + "…" : value)}");
        });
    }

    private static IEnumerable<string> Paths(System.Text.Json.Nodes.JsonNode? node, string prefix)
    {
        switch (node)
        {
            case System.Text.Json.Nodes.JsonObject o:
                foreach (var (k, v) in o)
                {
                    var p = prefix.Length == 0 ? k : prefix + "." + k;
                    yield return p;
                    foreach (var inner in Paths(v, p))
                    {
                        yield return inner;
                    }
                }

                break;
            case System.Text.Json.Nodes.JsonArray a:
                for (var i = 0; i < a.Count; i++)
                {
                    var p = $"{prefix}[{i}]";
                    yield return p;
                    foreach (var inner in Paths(a[i], p))
                    {
                        yield return inner;
                    }
                }

                break;
        }
    }

    private static (System.Text.Json.Nodes.JsonNode? Parent, string? Key, int Index) Locate(System.Text.Json.Nodes.JsonNode root, string path)
    {
        System.Text.Json.Nodes.JsonNode? parent = null;
        System.Text.Json.Nodes.JsonNode? current = root;
        string? key = null;
        var index = -1;
        foreach (var token in System.Text.RegularExpressions.Regex.Matches(path, @"[^.\[\]]+|\[\d+\]").Select(m => m.Value))
        {
            parent = current;
            if (token.StartsWith('['))
            {
                key = null;
                index = int.Parse(token[1..^1], CultureInfo.InvariantCulture);
                current = parent![index];
            }
            else
            {
                key = token;
                current = parent![key];
            }
        }

        return (parent, key, index);
    }

    /// <summary>Any JSON value up to <paramref name="depth"/> levels: every kind, odd numbers and strings.</summary>
    private static Gen<string> JsonValue(int depth)
    {
        var scalar = Gen.OneOf(
            Gen.OneOf("null", "true", "false", "0", "-1", "1.5", "1e308", "-1e-308", "12345678901234567890123", "9007199254740993", "\"\"", "\"x\"", "\"\\u0000\"", "\"日本\""),
            Gen.Int.Select(i => i.ToString(CultureInfo.InvariantCulture)),
            Gen.String[Gen.Char[(char)0, (char)0xFFFF], 0, 20].Select(s => System.Text.Json.JsonSerializer.Serialize(s)));
        if (depth == 0)
        {
            return scalar;
        }

        var inner = JsonValue(depth - 1);
        var array = inner.Array[0, 4].Select(items => "[" + string.Join(",", items) + "]");
        var obj = Gen.Select(Gen.OneOf("name", "resource", "steps", "spec", "id", "value", "role", "namespaces", "runid", "schema", "x", ""), inner)
            .Array[0, 4].Select(members => "{" + string.Join(",", members.Select(m => System.Text.Json.JsonSerializer.Serialize(m.Item1) + ":" + m.Item2)) + "}");
        return Freq((3, scalar), (1, array), (1, obj));
    }

    private static string Deep(int depth, bool arrays) =>
        arrays ? new string('[', depth) + new string(']', depth) : string.Concat(Enumerable.Repeat("{\"a\":", depth)) + "1" + new string('}', depth);

    /// <summary>The template with a nested value in its first object member, so the whole body is <paramref name="depth"/> deep.</summary>
    private static string DeepInside(string template, int depth)
    {
        var node = System.Text.Json.Nodes.JsonNode.Parse(template)!.AsObject();
        var member = node.Select(p => p.Key).FirstOrDefault(k => k is "spec" or "schema" or "params" or "metadata" or "labels" or "repository") ?? node.First().Key;
        var copy = System.Text.Json.Nodes.JsonNode.Parse(template)!.AsObject();
        copy[member] = null;
        var text = copy.ToJsonString();
        var marker = $"\"{member}\":null";
        // The body object is level 1; the nested value fills the levels up to depth.
        return text.Replace(marker, $"\"{member}\":" + Deep(depth - 1, arrays: false), StringComparison.Ordinal);
    }

    private static string Oversized(string template, int size)
    {
        var node = System.Text.Json.Nodes.JsonNode.Parse(template)!.AsObject();
        node["padding"] = new string('p', size);
        return node.ToJsonString();
    }

    private static Gen<string> RandomPath()
    {
        var segment = Freq(
            (4, Gen.OneOf("namespaces", "default", "runs", "pipelines", "resources", "resource-definitions", "logs", "keys", "secrets", "hooks", "stream",
                "graph", "queue", "cancel", "retry", "apply", "openapi", "metrics", "step-secrets", "health", "..", ".", "%2e%2e", "", "favicon.ico", "admin", ".env")),
            (2, Gen.OneOf(BadNames)),
            (1, Gen.String[Gen.Char["abcdefghijklmnopqrstuvwxyz0123456789-_.~"], 1, 30]),
            (1, Gen.Guid.Select(g => g.ToString())),
            (1, Gen.Int[100, 3000].Select(n => new string('r', n))));
        return segment.Array[1, 8].Select(s => "/" + string.Join("/", s));
    }
}
