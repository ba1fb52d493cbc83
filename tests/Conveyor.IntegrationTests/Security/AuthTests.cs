using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Conveyor.Api.Security;
using Conveyor.Testing;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Routing.Patterns;
using Conveyor.Grains.Security;
using Microsoft.Extensions.DependencyInjection;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Conveyor.IntegrationTests.Security;

/// <summary>API keys, roles and namespaces against a real host with authentication on.</summary>
[Collection(SecurityCollection.Name)]
public sealed class AuthTests(SecurityFixture fx)
{
    [Fact]
    public void Every_mapped_endpoint_has_an_authorization_decision()
    {
        var endpoints = fx.Host.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>().ToList();
        Assert.True(endpoints.Count > 40, $"only {endpoints.Count} endpoints found");
        var undecided = endpoints
            .Where(e => e.Metadata.GetMetadata<IAllowAnonymous>() is null && e.Metadata.GetMetadata<ConveyorRoleMetadata>() is null)
            .Select(e => $"{string.Join(",", e.Metadata.GetMetadata<Microsoft.AspNetCore.Routing.HttpMethodMetadata>()?.HttpMethods ?? [])} {e.RoutePattern.RawText}")
            .ToList();
        Assert.True(undecided.Count == 0, "endpoints without ForViewers/ForOperators/ForAdmins/Anonymous: " + string.Join("; ", undecided));
        Assert.All(endpoints, e => Assert.NotEmpty(e.Metadata.GetOrderedMetadata<IAuthorizeData>()));
    }

    [Fact]
    public async Task Missing_malformed_and_unknown_keys_are_401_with_a_bearer_challenge()
    {
        var unknown = ApiKeys.Generate().Key;
        foreach (var (key, scheme) in new[] { ((string?)null, (string?)null), ("garbage", "Bearer"), (unknown, "Bearer"), ("cvk_x", "Bearer"), ("secret", "Basic") })
        {
            using var client = fx.Client(null);
            using var request = new HttpRequestMessage(HttpMethod.Get, "/pipelines/anything");
            if (key is not null)
            {
                request.Headers.TryAddWithoutValidation("Authorization", $"{scheme} {key}");
            }

            using var response = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.StartsWith("Bearer", response.Headers.WwwAuthenticate.ToString());
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
            Assert.Equal("urn:conveyor:problem:unauthorized", problem.GetProperty("type").GetString());
            Assert.False(string.IsNullOrEmpty(problem.GetProperty("error").GetString()));
        }
    }

    [Fact]
    public async Task Health_probes_and_the_openapi_document_need_no_key()
    {
        using var client = fx.Client(null);
        foreach (var path in new[] { "/health", "/healthz", "/readyz", "/openapi/conveyor.json", "/" })
        {
            using var response = await client.GetAsync(path);
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{path}: {(int)response.StatusCode}");
        }
    }

    /// <summary>
    /// Every mapped endpoint (from the host's <see cref="EndpointDataSource"/>, so a new route is covered by itself)
    /// against every kind of caller, with the expectation computed from the endpoint's own role metadata: no key and
    /// malformed, unknown or revoked keys are 401; a key whose role is too low, or that is scoped to another namespace,
    /// is 403; every other request passes authorization (it may still be a 4xx of validation or a 404: the objects do
    /// not exist and the bodies are invalid, so nothing is stored) — never 401 or 403. Anonymous endpoints (health, the
    /// OpenAPI document, metrics, signed webhooks, step-token secrets) never answer the API-key challenge or 403.
    /// </summary>
    [Fact]
    public async Task Every_endpoint_allows_or_denies_each_kind_of_key_as_its_role_metadata_says()
    {
        var ns = EngineFixture.Unique("team");
        var other = EngineFixture.Unique("other");
        await fx.CreateNamespaceAsync(ns);
        await fx.CreateNamespaceAsync(other);
        var revoked = await fx.CreateKeyAsync("admin");
        using (var admin = fx.Client(fx.AdminKey))
        using (var revoke = await admin.DeleteAsync($"/keys/{revoked.Split('_')[1]}"))
        {
            Assert.Equal(HttpStatusCode.NoContent, revoke.StatusCode);
        }

        // Callers. Scoped keys come for the request's namespace (ns on /namespaces/{ns}/…, default on the original
        // routes) and for another one.
        var scoped = new Dictionary<(string Role, string Ns), string>();
        foreach (var role in new[] { "viewer", "operator" })
        {
            foreach (var n in new[] { ns, "default", other })
            {
                scoped[(role, n)] = await fx.CreateKeyAsync(role, n);
            }
        }

        var admins = await fx.CreateKeyAsync("admin");
        var unauthenticated = new (string Name, string? Header)[]
        {
            ("no key", null), ("malformed key", "Bearer cvk_x"), ("not a bearer", "Basic YWRtaW46YWRtaW4="),
            ("unknown key", "Bearer " + ApiKeys.Generate().Key), ("revoked key", "Bearer " + revoked),
        };

        var endpoints = fx.Host.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>().ToList();
        Assert.True(endpoints.Count > 40, $"only {endpoints.Count} endpoints found");
        var failures = new List<string>();
        var allowedCount = 0;
        foreach (var endpoint in endpoints)
        {
            var method = endpoint.Metadata.GetMetadata<HttpMethodMetadata>()?.HttpMethods is [var first, ..] ? first : "GET";
            var anonymous = endpoint.Metadata.GetMetadata<IAllowAnonymous>() is not null;
            var role = endpoint.Metadata.GetMetadata<ConveyorRoleMetadata>() ?? new ConveyorRoleMetadata(ApiRole.Admin, Global: true);
            var namespaced = endpoint.RoutePattern.Parameters.Any(p => p.Name == "namespace");
            var requestNs = namespaced && !role.Global ? ns : "default";
            var path = Fill(endpoint, role.Global ? EngineFixture.Unique("absent") : ns);
            var describe = $"{method} {endpoint.RoutePattern.RawText}";

            // The metadata itself follows the documented table: keys, the namespace registry, the audit trail and the
            // re-encryption of secrets are admin, other reads viewer, other writes operator.
            var raw = endpoint.RoutePattern.RawText ?? "";
            var registry = raw.StartsWith("/keys", StringComparison.Ordinal) || raw.TrimEnd('/') is "/namespaces" or "/namespaces/{namespace}" or "/audit" or "/secrets/reencrypt";
            var documented = anonymous ? "anonymous" : registry ? "admin (global)" : method == "GET" ? "viewer" : "operator";
            var declared = anonymous ? "anonymous" : role.Global ? $"{role.Role.ToString().ToLowerInvariant()} (global)" : role.Role.ToString().ToLowerInvariant();
            if (declared != documented)
            {
                failures.Add($"{describe} declares {declared}; the README's table says {documented}");
            }

            async Task<(int Status, string Title)> Send(string? authorization)
            {
                using var request = new HttpRequestMessage(new HttpMethod(method), path);
                if (method is "POST" or "PUT" or "PATCH")
                {
                    request.Content = new StringContent("{}", Encoding.UTF8, "application/json");
                }

                if (authorization is not null)
                {
                    request.Headers.TryAddWithoutValidation("Authorization", authorization);
                }

                using var client = fx.Client(null);
                using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
                var title = "";
                if (response.Content.Headers.ContentType?.MediaType == "application/problem+json")
                {
                    title = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("title").GetString() ?? "";
                }

                return ((int)response.StatusCode, title);
            }

            void Expect(string caller, (int Status, string Title) got, string expected)
            {
                var actual = got.Status switch
                {
                    >= 500 => $"{got.Status}",
                    401 when got.Title == ChallengeTitle => "401",
                    403 when got.Title == ForbiddenTitle => "403",
                    401 or 403 => $"{got.Status} ({got.Title})",
                    _ => "allowed",
                };
                if (anonymous && expected == "allowed" && got.Status is 401 or 403 && got.Title is not (ChallengeTitle or ForbiddenTitle))
                {
                    // The route's own authentication (webhook signature, step token) refused what is no signature or token.
                    actual = "allowed";
                }

                if (actual != expected)
                {
                    failures.Add($"{caller} on {describe} ({path}): expected {expected}, got {got.Status} {got.Title}");
                }
                else if (expected == "allowed")
                {
                    allowedCount++;
                }
            }

            foreach (var (name, header) in unauthenticated)
            {
                Expect(name, await Send(header), anonymous ? "allowed" : "401");
            }

            Expect("admin", await Send("Bearer " + admins), "allowed");
            foreach (var ((keyRole, keyNs), key) in scoped)
            {
                var rank = keyRole == "viewer" ? ApiRole.Viewer : ApiRole.Operator;
                var expected = anonymous ? "allowed"
                    : rank < role.Role || role.Global ? "403"
                    : keyNs == requestNs ? "allowed"
                    : "403";
                Expect($"{keyRole} of {(keyNs == requestNs ? "this namespace" : "another namespace")} ({keyNs})", await Send("Bearer " + key), expected);
            }
        }

        Assert.True(failures.Count == 0, $"{failures.Count} wrong decisions:\n" + string.Join("\n", failures));
        Assert.True(allowedCount > endpoints.Count * 2, $"only {allowedCount} allowed requests");
    }

    private const string ChallengeTitle = "Authentication is required.";
    private const string ForbiddenTitle = "The API key may not do this.";

    /// <summary>A concrete path for an endpoint: objects that do not exist, in <paramref name="ns"/>.</summary>
    private static string Fill(RouteEndpoint endpoint, string ns)
    {
        var values = new Dictionary<string, string>
        {
            ["namespace"] = ns, ["name"] = "nope", ["type"] = "nope", ["id"] = Guid.NewGuid().ToString(), ["runid"] = Guid.NewGuid().ToString(),
            ["drivername"] = "nobody", ["pipeline"] = "nope", ["hook"] = "nope", ["step"] = "nope", ["version"] = "1", ["documentName"] = "conveyor",
        };
        var segments = endpoint.RoutePattern.PathSegments.Select(segment => string.Concat(segment.Parts.Select(part => part switch
        {
            RoutePatternLiteralPart literal => literal.Content,
            RoutePatternSeparatorPart separator => separator.Content,
            RoutePatternParameterPart parameter => values[parameter.Name],
            _ => "",
        })));
        return "/" + string.Join("/", segments);
    }

    [Fact]
    public async Task A_revoked_key_is_refused_on_its_next_request()
    {
        var key = await fx.CreateKeyAsync("viewer", "*");
        using var client = fx.Client(key);
        using (var before = await client.GetAsync("/runs"))
        {
            Assert.Equal(HttpStatusCode.OK, before.StatusCode);
        }

        var id = key.Split('_')[1];
        using var admin = fx.Client(fx.AdminKey);
        using (var revoke = await admin.DeleteAsync($"/keys/{id}"))
        {
            Assert.Equal(HttpStatusCode.NoContent, revoke.StatusCode);
        }

        using var after = await client.GetAsync("/runs");
        Assert.Equal(HttpStatusCode.Unauthorized, after.StatusCode);
        Assert.Contains("revoked", await after.Content.ReadAsStringAsync());
        var listed = await admin.GetFromJsonAsync<JsonElement>($"/keys/{id}");
        Assert.True(listed.TryGetProperty("revokedAt", out _));
    }

    [Fact]
    public async Task Keys_are_listed_without_their_secret()
    {
        var key = await fx.CreateKeyAsync("operator", "default");
        // cvk_<id>_<secret>: the secret is base64url, so it may itself contain '_'; it is everything after the id.
        var secret = key.Split('_', 3)[2];
        using var admin = fx.Client(fx.AdminKey);
        var list = await admin.GetStringAsync("/keys");
        Assert.Contains(key.Split('_')[1], list);
        Assert.DoesNotContain(secret, list);
        Assert.DoesNotContain(fx.AdminKey.Split('_', 3)[2], list);
        var one = await admin.GetStringAsync($"/keys/{key.Split('_')[1]}");
        Assert.DoesNotContain(secret, one);

        using var bad = await admin.PostAsJsonAsync("/keys", new { name = "x", role = "root", namespaces = new[] { "default" } });
        await ProblemAssert.NamesFieldAsync(bad, "role");
        using var noNamespace = await admin.PostAsJsonAsync("/keys", new { name = "x", role = "viewer" });
        await ProblemAssert.NamesFieldAsync(noNamespace, "namespaces");
    }

    [Fact]
    public async Task Namespaces_are_created_listed_and_deleted_and_unknown_ones_are_404()
    {
        var ns = EngineFixture.Unique("ns");
        using var admin = fx.Client(fx.AdminKey);
        using (var unknown = await admin.GetAsync($"/namespaces/{ns}/runs"))
        {
            await ProblemAssert.SaysAsync(unknown, HttpStatusCode.NotFound, "not-found", $"namespace {ns} not found");
        }

        await fx.CreateNamespaceAsync(ns);
        using (var again = await admin.PostAsJsonAsync("/namespaces", new { name = ns }))
        {
            await ProblemAssert.SaysAsync(again, HttpStatusCode.Conflict, "conflict", "already exists");
        }

        var list = await admin.GetFromJsonAsync<JsonElement>("/namespaces");
        var names = list.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("name").GetString()).ToList();
        Assert.Contains(ns, names);
        Assert.Contains("default", names);
        using (var known = await admin.GetAsync($"/namespaces/{ns}/runs"))
        {
            Assert.Equal(HttpStatusCode.OK, known.StatusCode);
            Assert.Empty((await known.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("items").EnumerateArray());
        }

        using (var bad = await admin.PostAsJsonAsync("/namespaces", new { name = "Not_A_Label" }))
        {
            await ProblemAssert.NamesFieldAsync(bad, "name");
        }

        using (var deleteDefault = await admin.DeleteAsync("/namespaces/default"))
        {
            await ProblemAssert.SaysAsync(deleteDefault, HttpStatusCode.Conflict, "conflict", "default namespace cannot be deleted");
        }

        // A namespace with runs is only deleted on request, which cancels its unfinished runs.
        var runId = await StartWaitingRunAsync(ns);
        using (var busy = await admin.DeleteAsync($"/namespaces/{ns}"))
        {
            await ProblemAssert.SaysAsync(busy, HttpStatusCode.Conflict, "conflict", "cascade=true");
        }

        using (var cascade = await admin.DeleteAsync($"/namespaces/{ns}?cascade=true"))
        {
            Assert.Equal(HttpStatusCode.NoContent, cascade.StatusCode);
        }

        using (var deleted = await admin.GetAsync($"/namespaces/{ns}"))
        {
            await ProblemAssert.IsAsync(deleted, HttpStatusCode.NotFound, "not-found");
        }

        using (var gone = await admin.GetAsync($"/namespaces/{ns}/runs/{runId}"))
        {
            Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
        }

        using (var reuse = await admin.PostAsJsonAsync("/namespaces", new { name = ns }))
        {
            await ProblemAssert.SaysAsync(reuse, HttpStatusCode.Conflict, "conflict", "not reused");
        }
    }

    [Fact]
    public async Task A_key_of_one_namespace_sees_nothing_of_another()
    {
        var mine = EngineFixture.Unique("mine");
        var theirs = EngineFixture.Unique("theirs");
        await fx.CreateNamespaceAsync(mine);
        await fx.CreateNamespaceAsync(theirs);
        var myRun = await StartWaitingRunAsync(mine);
        var theirRun = await StartWaitingRunAsync(theirs);

        await using (var nats = new NatsConnection(NatsOpts.Default with { Url = fx.Nats.Url }))
        {
            var js = new NatsJSContext(nats);
            foreach (var run in new[] { myRun, theirRun })
            {
                var entry = JsonSerializer.SerializeToUtf8Bytes(new { runid = run, driver = "nobody", pipeline = "p", timestamp = "1714650000", message = $"log of {run}" });
                (await js.PublishAsync($"logs.{run}", entry)).EnsureSuccess();
            }
        }

        using var admin = fx.Client(fx.AdminKey);
        await Eventually.TrueAsync(
            async () => (await admin.GetStringAsync($"/namespaces/{theirs}/runs/{theirRun}/logs")).Contains($"log of {theirRun}", StringComparison.Ordinal),
            Deadlines.Event,
            "their log should be stored");

        using var viewer = fx.Client(await fx.CreateKeyAsync("viewer", mine));
        using var defaultViewer = fx.Client(await fx.CreateKeyAsync("viewer", "default"));
        // Their namespace by name: forbidden.
        foreach (var path in new[] { $"/namespaces/{theirs}/runs/{theirRun}", $"/namespaces/{theirs}/runs", $"/namespaces/{theirs}/runs/{theirRun}/logs", $"/namespaces/{theirs}/runs/{theirRun}/logs/stream" })
        {
            using var response = await viewer.GetAsync(path);
            Assert.True(response.StatusCode == HttpStatusCode.Forbidden, $"{path}: {(int)response.StatusCode}");
        }

        // Their objects through my namespace, or through the original routes: not found, as if they did not exist —
        // even for the admin, since isolation is in the keys, not only in the policy.
        foreach (var client in new[] { viewer, admin })
        {
            foreach (var path in new[] { $"/namespaces/{mine}/runs/{theirRun}", $"/namespaces/{mine}/runs/{theirRun}/logs", $"/namespaces/{mine}/runs/{theirRun}/logs/stream", $"/namespaces/{mine}/runs/{theirRun}/graph", $"/namespaces/{mine}/pipelines/p-{theirs}" })
            {
                using var response = await client.GetAsync(path);
                Assert.True(response.StatusCode == HttpStatusCode.NotFound, $"{path}: {(int)response.StatusCode}");
            }
        }

        foreach (var path in new[] { $"/logs?runid={theirRun}", $"/logs/pipeline/{theirRun}", $"/logs/streams/nobody/{theirRun}", $"/runs/{theirRun}", $"/runs/{theirRun}/logs" })
        {
            using var response = await defaultViewer.GetAsync(path, HttpCompletionOption.ResponseHeadersRead);
            Assert.True(response.StatusCode == HttpStatusCode.NotFound, $"{path}: {(int)response.StatusCode}");
        }

        using (var inject = await fx.Client(await fx.CreateKeyAsync("operator", "default"))
            .PostAsJsonAsync("/logs", new { runid = theirRun, driver = "x", message = "injected" }))
        {
            Assert.Equal(HttpStatusCode.NotFound, inject.StatusCode);
        }

        // Listing mine shows mine only.
        var list = await viewer.GetStringAsync($"/namespaces/{mine}/runs");
        Assert.Contains(myRun, list);
        Assert.DoesNotContain(theirRun, list);
        var myLogs = await viewer.GetStringAsync($"/namespaces/{mine}/runs/{myRun}/logs");
        Assert.DoesNotContain(theirRun, myLogs);

        // The live stream of my run carries my entries only.
        using var cts = new CancellationTokenSource(Deadlines.Event);
        await foreach (var e in SseClient.ReadAsync(viewer, $"/namespaces/{mine}/runs/{myRun}/logs/stream", cancellationToken: cts.Token))
        {
            Assert.DoesNotContain(theirRun, e.Data);
            if (e.Data.Contains($"log of {myRun}", StringComparison.Ordinal))
            {
                break;
            }
        }
    }

    [Fact]
    public async Task The_sdk_client_sends_its_api_key()
    {
        using var http = new HttpClient { BaseAddress = fx.Host.Address };
        var anonymous = new Conveyor.Client.ConveyorClient(http);
        var error = await Assert.ThrowsAnyAsync<Conveyor.Client.ConveyorApiException>(() => anonymous.ListRunsAsync());
        Assert.Equal(HttpStatusCode.Unauthorized, error.Status);

        var runId = await StartWaitingRunAsync("default");
        var viewer = new Conveyor.Client.ConveyorClient(http) { ApiKey = await fx.CreateKeyAsync("viewer", "default") };
        var page = await viewer.ListRunsAsync(pipeline: "p-default", limit: 100);
        // The key was sent and honoured: the viewer sees the default namespace's run (and only that namespace's).
        Assert.Contains(page.Items, r => r.Id.ToString() == runId);
        Assert.All(page.Items, r => Assert.Equal("default", r.Namespace));
        var forbidden = await Assert.ThrowsAnyAsync<Conveyor.Client.ConveyorApiException>(() => viewer.DeletePipelineAsync("nope"));
        Assert.Equal(HttpStatusCode.Forbidden, forbidden.Status);
    }

    /// <summary>A definition, a pipeline whose driver nobody serves, and a resource: a run that waits for its driver.</summary>
    private async Task<string> StartWaitingRunAsync(string ns)
    {
        await fx.AdminPostAsync($"/namespaces/{ns}/resource-definitions", new { name = "app", version = "1", schema = new { type = "object" } });
        await fx.AdminPostAsync($"/namespaces/{ns}/pipelines", new { name = $"p-{ns}", resource = "app", steps = new[] { new { id = "1", driver = "nobody" } } });
        var created = await fx.AdminPostAsync($"/namespaces/{ns}/resources", new { name = "web", resource = "app", pipeline = $"p-{ns}", spec = new { } });
        return created.GetProperty("runid").GetString()!;
    }
}
