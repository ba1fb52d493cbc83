using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Conveyor.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace Conveyor.IntegrationTests.Security;

/// <summary>
/// The single node's default — no API keys — against a real browser (Debian's headless Chromium): a page of another
/// origin tries to write through simple requests (no preflight), and a rebound host name tries to read. Nothing is
/// stored, nothing is read. <c>conveyor.sh test</c> installs Chromium when it is missing.
/// </summary>
[Collection(HardeningCollection.Name)]
public sealed class BrowserAttackTests(HardeningFixture fx, ITestOutputHelper output)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task A_page_of_another_origin_cannot_store_anything_through_simple_requests()
    {
        var target = fx.Open.Address.GetLeftPart(UriPartial.Authority);
        var definition = EngineFixture.Unique("planted");
        var pipeline = EngineFixture.Unique("planted");
        // What a hostile page can send without a preflight: a no-cors POST with a Blob body carries no Content-Type,
        // which the API reads as JSON (the original's SDKs rely on that); text/plain and form posts too.
        var page = $$"""
            <!doctype html><html><body><script>
            const target = {{JsonSerializer.Serialize(target)}};
            const definition = JSON.stringify({ name: {{JsonSerializer.Serialize(definition)}}, version: "1", schema: { type: "object" } });
            const pipeline = JSON.stringify({ name: {{JsonSerializer.Serialize(pipeline)}}, resource: {{JsonSerializer.Serialize(definition)}}, steps: [{ id: "1", driver: "shell", params: { command: "id" } }] });
            async function attempt(label, url, init) {
              try { const r = await fetch(url, init); return label + ":" + r.type + ":" + r.status; }
              catch (e) { return label + ":error"; }
            }
            (async () => {
              const results = [];
              results.push(await attempt("blob", target + "/resource-definitions", { method: "POST", mode: "no-cors", body: new Blob([definition]) }));
              results.push(await attempt("text", target + "/resource-definitions", { method: "POST", mode: "no-cors", headers: { "Content-Type": "text/plain" }, body: definition }));
              results.push(await attempt("pipeline", target + "/pipelines", { method: "POST", mode: "no-cors", body: new Blob([pipeline]) }));
              results.push(await attempt("put", target + "/pipelines/" + {{JsonSerializer.Serialize(pipeline)}}, { method: "PUT", mode: "no-cors", body: new Blob([pipeline]) }));
              results.push(await attempt("read", target + "/resource-definitions", { method: "GET", mode: "cors" }));
              await fetch("/done?r=" + encodeURIComponent(results.join(" ")));
            })();
            </script></body></html>
            """;

        var done = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var attacker = await AttackerAsync(page, done);
        using var browser = Chromium(attacker.Origin + "/");
        if (await Task.WhenAny(done.Task, Task.Delay(Deadline)) != done.Task)
        {
            throw new TimeoutException($"the page did not report within {Deadline.TotalSeconds} s; browser output:\n{browser.Output}");
        }

        var report = await done.Task;
        output.WriteLine($"page: {attacker.Origin}, target: {target}, report: {report}");

        // The writes reached the server (opaque answers, as no-cors fetches get) and the read was blocked by CORS.
        Assert.Contains("blob:opaque:0", report, StringComparison.Ordinal);
        Assert.Contains("read:error", report, StringComparison.Ordinal);
        using (var stored = await fx.Open.Http.GetAsync($"/resource-definitions/{definition}"))
        {
            Assert.Equal(HttpStatusCode.NotFound, stored.StatusCode);
        }

        using (var stored = await fx.Open.Http.GetAsync($"/pipelines/{pipeline}"))
        {
            Assert.Equal(HttpStatusCode.NotFound, stored.StatusCode);
        }
    }

    [Fact]
    public async Task A_rebound_host_name_reads_nothing()
    {
        var name = EngineFixture.Unique("secretdef");
        await HardeningFixture.SendAsync(fx.Open.Http, HttpMethod.Post, "/resource-definitions", new { name, version = "1", schema = new { type = "object" } });

        // The browser resolves evil.test to the API's address, as a DNS rebinding attack makes it do: the page's origin
        // is evil.test, so it could read whatever that name answers.
        var url = $"http://evil.test:{fx.Open.Address.Port}/resource-definitions/{name}";
        using var browser = Chromium(url, "--host-resolver-rules=MAP evil.test 127.0.0.1", "--dump-dom");
        var dom = await browser.ExitedAsync(Deadline);
        output.WriteLine(dom);
        Assert.Contains("urn:conveyor:problem:unknown-host", dom, StringComparison.Ordinal);
        Assert.DoesNotContain("\"version\"", dom, StringComparison.Ordinal);
    }

    /// <summary>A web server on another loopback address (another origin) serving the attacker's page.</summary>
    private static async Task<Attacker> AttackerAsync(string page, TaskCompletionSource<string> done)
    {
        var builder = WebApplication.CreateBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.2:0");
        var app = builder.Build();
        app.MapGet("/", () => Results.Content(page, "text/html"));
        app.MapGet("/done", (string r) =>
        {
            done.TrySetResult(r);
            return Results.Ok();
        });
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new Attacker(app, new Uri(address).GetLeftPart(UriPartial.Authority));
    }

    private sealed record Attacker(WebApplication App, string Origin) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await App.StopAsync();
            await App.DisposeAsync();
        }
    }

    private static Browser Chromium(string url, params string[] extra)
    {
        var path = new[] { "/usr/bin/chromium", "/usr/bin/chromium-browser" }.FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException("Chromium is not installed: apt-get install -y chromium (./conveyor.sh test installs it when run as root)");
        var profile = Directory.CreateTempSubdirectory("conveyor-chromium-");
        var info = new ProcessStartInfo(path) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in new[]
                 {
                     "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--no-first-run", "--disable-dev-shm-usage", $"--user-data-dir={profile.FullName}",
                 }.Concat(extra).Append(url))
        {
            info.ArgumentList.Add(argument);
        }

        return new Browser(Process.Start(info)!, profile);
    }

    /// <summary>A browser process this test started; disposing ends it (by its id) and removes its profile.</summary>
    private sealed class Browser : IDisposable
    {
        private readonly Process _process;
        private readonly DirectoryInfo _profile;
        private readonly System.Text.StringBuilder _stdout = new();
        private readonly System.Text.StringBuilder _stderr = new();
        private readonly Task _pumps;

        public Browser(Process process, DirectoryInfo profile)
        {
            _process = process;
            _profile = profile;
            _pumps = Task.WhenAll(Pump(process.StandardOutput, _stdout), Pump(process.StandardError, _stderr));
        }

        public string Output
        {
            get
            {
                lock (_stderr)
                {
                    return _stderr.ToString();
                }
            }
        }

        public async Task<string> ExitedAsync(TimeSpan deadline)
        {
            using var cts = new CancellationTokenSource(deadline);
            await _process.WaitForExitAsync(cts.Token);
            await _pumps;
            lock (_stdout)
            {
                return _stdout.ToString();
            }
        }

        private static async Task Pump(StreamReader reader, System.Text.StringBuilder into)
        {
            while (await reader.ReadLineAsync() is { } line)
            {
                lock (into)
                {
                    into.AppendLine(line);
                }
            }
        }

        public void Dispose()
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(10_000);
            }

            _process.Dispose();
            try
            {
                _profile.Delete(recursive: true);
            }
            catch (IOException)
            {
                // A renderer still closing its files; the temp folder is cleaned later.
            }
        }
    }
}
