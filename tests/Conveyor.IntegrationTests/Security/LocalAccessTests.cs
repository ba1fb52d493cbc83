using System.Net;
using System.Net.Http.Json;
using System.Text;
using Microsoft.AspNetCore.Hosting;
using Conveyor.Testing;

namespace Conveyor.IntegrationTests.Security;

/// <summary>
/// A host without API keys answers only its own machine's programs: no cross-site writes, no foreign Host names (DNS
/// rebinding), and no listening on a non-loopback address. The real-browser version is <see cref="BrowserAttackTests"/>.
/// </summary>
[Collection(HardeningCollection.Name)]
public sealed class LocalAccessTests(HardeningFixture fx)
{
    private static HttpRequestMessage Definition(string name, params (string Header, string Value)[] headers)
    {
        // As a page's fetch(url, {method: 'POST', mode: 'no-cors', body: new Blob([json])}) sends it: no Content-Type.
        var request = new HttpRequestMessage(HttpMethod.Post, "/resource-definitions")
        {
            Content = new ByteArrayContent(Encoding.UTF8.GetBytes($$$"""{"name":"{{{name}}}","version":"1","schema":{"type":"object"}}""")),
        };
        foreach (var (header, value) in headers)
        {
            request.Headers.TryAddWithoutValidation(header, value);
        }

        return request;
    }

    private async Task<HttpStatusCode> StatusOfDefinitionAsync(string name)
    {
        using var response = await fx.Open.Http.GetAsync($"/resource-definitions/{name}");
        return response.StatusCode;
    }

    [Fact]
    public async Task Cross_site_writes_are_refused_and_store_nothing()
    {
        var origin = fx.Open.Address.GetLeftPart(UriPartial.Authority);
        foreach (var headers in new[]
                 {
                     new[] { ("Origin", "http://evil.example"), ("Sec-Fetch-Site", "cross-site") },
                     new[] { ("Origin", "http://127.0.0.1:1") },
                     new[] { ("Origin", "null") },
                     new[] { ("Sec-Fetch-Site", "same-site") },
                 })
        {
            var name = EngineFixture.Unique("xsite");
            using var response = await fx.Open.Http.SendAsync(Definition(name, headers));
            await ProblemAssert.IsAsync(response, HttpStatusCode.Forbidden, "cross-site-request");
            Assert.Equal(HttpStatusCode.NotFound, await StatusOfDefinitionAsync(name));
        }

        // The API's own origin, a browser's same-origin request, and programs (no such headers) may write.
        foreach (var headers in new[] { new[] { ("Origin", origin), ("Sec-Fetch-Site", "same-origin") }, Array.Empty<(string, string)>() })
        {
            var name = EngineFixture.Unique("same");
            using var response = await fx.Open.Http.SendAsync(Definition(name, headers));
            Assert.Equal(HttpStatusCode.Created, response.StatusCode);
            Assert.Equal(HttpStatusCode.OK, await StatusOfDefinitionAsync(name));
        }
    }

    [Fact]
    public async Task A_rebound_host_name_gets_no_answer_but_loopback_names_and_addresses_do()
    {
        foreach (var host in new[] { "evil.example", "evil.example:8080", "localhost.evil.example" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/resource-definitions/app");
            request.Headers.Host = host;
            using var response = await fx.Open.Http.SendAsync(request);
            await ProblemAssert.IsAsync(response, HttpStatusCode.BadRequest, "unknown-host");
        }

        foreach (var host in new[] { "localhost", $"localhost:{fx.Open.Address.Port}", "conveyor.localhost", "127.0.0.1", "[::1]", "10.1.2.3" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/health");
            request.Headers.Host = host;
            using var response = await fx.Open.Http.SendAsync(request);
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"Host: {host}: {(int)response.StatusCode}");
        }
    }

    [Fact]
    public async Task With_api_keys_on_the_browser_guards_stand_aside()
    {
        using var admin = fx.LockedClient();
        var name = EngineFixture.Unique("keyed");
        using var request = Definition(name, ("Origin", "http://evil.example"), ("Sec-Fetch-Site", "cross-site"));
        request.Headers.Host = "conveyor.example.com";
        using var response = await admin.SendAsync(request);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
    }

    [Fact]
    public async Task A_host_without_keys_refuses_to_start_on_a_non_loopback_address()
    {
        var settings = new Dictionary<string, string?> { ["Urls"] = "http://0.0.0.0:0" };
        var refused = await Assert.ThrowsAnyAsync<Exception>(() => ConveyorTestHost.StartAsync(
            fx.Nats.Url, fx.Redis.ConnectionString, EngineFixture.Unique("remote"), settings, b => b.WebHost.UseUrls("http://0.0.0.0:0")));
        Assert.Contains("refuses to listen on http://0.0.0.0:0 without authentication", refused.ToString(), StringComparison.Ordinal);

        // The same address with keys on, or with the host's own authentication declared, starts.
        foreach (var extra in new[] { ("Conveyor:Auth:Enabled", "true"), ("Conveyor:Auth:AllowUnauthenticatedRemoteAccess", "true") })
        {
            var ok = new Dictionary<string, string?>(settings) { [extra.Item1] = extra.Item2, ["Conveyor:Auth:BootstrapKey"] = fx.AdminKey };
            await using var host = await ConveyorTestHost.StartAsync(fx.Nats.Url, fx.Redis.ConnectionString, EngineFixture.Unique("remote"), ok, b => b.WebHost.UseUrls("http://0.0.0.0:0"));
            using var probe = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{host.Address.Port}") };
            Assert.Equal(HttpStatusCode.OK, (await probe.GetAsync("/health")).StatusCode);
        }
    }
}
