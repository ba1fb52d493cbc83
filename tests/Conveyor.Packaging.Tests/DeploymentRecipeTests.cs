using System.Collections;
using System.Text;
using System.Text.Json;
using YamlDotNet.Serialization;

namespace Conveyor.Packaging.Tests;

/// <summary>
/// The container image, compose.yaml and the Helm chart, checked statically: no base image can be pulled and no
/// cluster or helm binary exists here, so the container properties are computed by the SDK's own target, compose.yaml
/// is parsed and its references followed, and the chart is rendered (see <see cref="HelmTemplate"/>) and the
/// Kubernetes objects read back.
/// </summary>
[Collection(PackagingCollection.Name)]
public sealed class DeploymentRecipeTests
{
    private static readonly string Chart = Path.Combine(Repo.Root, "deploy", "helm", "conveyor");

    private static Dictionary<object, object> Yaml(string text) => new DeserializerBuilder().Build().Deserialize<Dictionary<object, object>>(text);

    private static object? At(object? node, params string[] path)
    {
        foreach (var key in path)
        {
            node = node switch
            {
                IDictionary map when map.Contains(key) => map[key],
                IList list when int.TryParse(key, out var index) && index < list.Count => list[index],
                _ => null,
            };
        }

        return node;
    }

    private static string? Text(object? node, params string[] path) => At(node, path) as string;

    [Fact]
    public async Task The_container_image_is_a_cluster_mode_silo_on_port_8080_tagged_with_the_version()
    {
        var json = await Dotnet.RunAsync(
            Path.Combine(Repo.Root, "src", "Conveyor.Silo"),
            "msbuild", "-nologo", "-t:ComputeContainerConfig", $"-p:Configuration={Repo.Configuration}",
            "-getProperty:ContainerRepository", "-getProperty:ContainerImageTags", "-getProperty:ContainerBaseImage",
            "-getItem:ContainerEnvironmentVariables", "-getItem:ContainerPort");
        var config = JsonDocument.Parse(json[json.IndexOf('{', StringComparison.Ordinal)..]).RootElement;
        var properties = config.GetProperty("Properties");
        Assert.Equal("conveyor-silo", properties.GetProperty("ContainerRepository").GetString());
        Assert.StartsWith("mcr.microsoft.com/dotnet/aspnet:10.0", properties.GetProperty("ContainerBaseImage").GetString(), StringComparison.Ordinal);
        var tags = properties.GetProperty("ContainerImageTags").GetString()!.Split(';');
        Assert.Contains("latest", tags);
        Assert.Contains(tags, t => System.Text.RegularExpressions.Regex.IsMatch(t, @"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$"));

        var environment = config.GetProperty("Items").GetProperty("ContainerEnvironmentVariables").EnumerateArray()
            .ToDictionary(e => e.GetProperty("Identity").GetString()!, e => e.GetProperty("Value").GetString());
        Assert.Equal("http://+:8080", environment["Urls"]);
        Assert.Equal("Cluster", environment["Conveyor__Mode"]);
        var ports = config.GetProperty("Items").GetProperty("ContainerPort").EnumerateArray().Select(p => p.GetProperty("Identity").GetString()).ToList();
        Assert.Contains("8080", ports);
        Assert.Contains("11111", ports);
    }

    [Fact]
    public void Compose_runs_the_silo_image_on_healthy_nats_with_jetstream_and_redis_with_an_append_only_file()
    {
        var compose = Yaml(File.ReadAllText(Path.Combine(Repo.Root, "compose.yaml")));
        var services = (IDictionary)At(compose, "services")!;
        var volumes = (IDictionary)At(compose, "volumes")!;
        foreach (DictionaryEntry service in services)
        {
            Assert.NotNull(At(service.Value, "healthcheck", "test"));
            foreach (var volume in (At(service.Value, "volumes") as IList)?.Cast<string>() ?? [])
            {
                Assert.True(volumes.Contains(volume.Split(':')[0]), $"{service.Key} mounts the declared volume {volume}");
            }
        }

        var nats = (IList)At(services, "nats", "command")!;
        Assert.Contains("-js", nats.Cast<string>());
        Assert.Contains("/data", nats.Cast<string>());
        var redis = ((IList)At(services, "redis", "command")!).Cast<string>().ToList();
        Assert.Equal("yes", redis[redis.IndexOf("--appendonly") + 1]);

        var conveyor = At(services, "conveyor")!;
        Assert.Equal("conveyor-silo:latest", Text(conveyor, "image"));
        Assert.Equal("Cluster", Text(conveyor, "environment", "Conveyor__Mode"));
        Assert.Equal("nats://nats:4222", Text(conveyor, "environment", "ConnectionStrings__nats"));
        Assert.Equal("redis:6379", Text(conveyor, "environment", "ConnectionStrings__redis"));
        Assert.StartsWith("${CONVEYOR_BOOTSTRAP_KEY:?", Text(conveyor, "environment", "Conveyor__Auth__BootstrapKey"), StringComparison.Ordinal);
        Assert.Equal("service_healthy", Text(conveyor, "depends_on", "nats", "condition"));
        Assert.Equal("service_healthy", Text(conveyor, "depends_on", "redis", "condition"));
        Assert.Contains("/readyz", string.Join(' ', ((IList)At(conveyor, "healthcheck", "test")!).Cast<string>()), StringComparison.Ordinal);
        Assert.Equal("8080:8080", ((IList)At(conveyor, "ports")!)[0]);
    }

    private static Dictionary<object, object> Values(string? overrides = null)
    {
        var values = Yaml(File.ReadAllText(Path.Combine(Chart, "values.yaml")));
        if (overrides is not null)
        {
            Merge(values, Yaml(overrides));
        }

        return values;
    }

    private static void Merge(IDictionary target, IDictionary source)
    {
        foreach (DictionaryEntry entry in source)
        {
            if (entry.Value is IDictionary child && target[entry.Key] is IDictionary existing)
            {
                Merge(existing, child);
            }
            else
            {
                target[entry.Key] = entry.Value;
            }
        }
    }

    /// <summary>Renders every template, as <c>helm template demo deploy/helm/conveyor</c> would, into its Kubernetes objects.</summary>
    private static List<Dictionary<object, object>> Render(Dictionary<object, object> values)
    {
        var chart = Yaml(File.ReadAllText(Path.Combine(Chart, "Chart.yaml")));
        var root = new Dictionary<string, object?>
        {
            ["Values"] = values,
            ["Release"] = new Dictionary<object, object> { ["Name"] = "demo", ["Namespace"] = "ci" },
            ["Chart"] = new Dictionary<object, object> { ["Name"] = chart["name"], ["Version"] = chart["version"], ["AppVersion"] = chart["appVersion"] },
        };
        var objects = new List<Dictionary<object, object>>();
        foreach (var template in Directory.GetFiles(Path.Combine(Chart, "templates"), "*.yaml").Order(StringComparer.Ordinal))
        {
            var rendered = HelmTemplate.Render(File.ReadAllText(template), root);
            foreach (var document in rendered.Split("\n---", StringSplitOptions.RemoveEmptyEntries).Where(d => !string.IsNullOrWhiteSpace(d)))
            {
                objects.Add(Yaml(document));
            }
        }

        return objects;
    }

    private const string Keys = """
        auth:
          bootstrapKey: cvk_helmtest00000001_SGVsbVRlc3RCb290c3RyYXBLZXlGb3JDb252ZXlvcg
          secretsKey: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=
        extraEnv:
          OTEL_EXPORTER_OTLP_ENDPOINT: http://collector:4317
        """;

    [Fact]
    public void The_helm_chart_probes_readiness_and_liveness_budgets_disruptions_and_drains_within_its_grace_period()
    {
        var objects = Render(Values(Keys));
        Assert.Equal(["Deployment", "PodDisruptionBudget", "Secret", "Service"], objects.Select(o => (string)o["kind"]).Order(StringComparer.Ordinal));
        var deployment = objects.Single(o => (string)o["kind"] == "Deployment");
        var pod = At(deployment, "spec", "template", "spec")!;
        var container = At(pod, "containers", "0")!;
        Assert.Equal("conveyor-silo:latest", Text(container, "image"));
        Assert.Equal("/readyz", Text(container, "readinessProbe", "httpGet", "path"));
        Assert.Equal("/healthz", Text(container, "livenessProbe", "httpGet", "path"));
        Assert.Equal("http", Text(container, "readinessProbe", "httpGet", "port"));
        Assert.Contains(((IList)At(container, "ports")!).Cast<object>(), p => Text(p, "name") == "http" && Text(p, "containerPort") == "8080");

        // The drain: a preStop pause, then ASP.NET Core's 30 s shutdown timeout and Orleans' stop, with room to spare.
        var grace = int.Parse(Text(pod, "terminationGracePeriodSeconds")!, System.Globalization.CultureInfo.InvariantCulture);
        var preStop = int.Parse((string)((IList)At(container, "lifecycle", "preStop", "exec", "command")!)[1]!, System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(grace >= preStop + 30 + 15, $"grace period {grace} s covers the {preStop} s pause and a 30 s shutdown");

        var environment = ((IList)At(container, "env")!).Cast<object>().ToDictionary(e => Text(e, "name")!);
        Assert.Equal("Cluster", Text(environment["Conveyor__Mode"], "value"));
        Assert.Equal("status.podIP", Text(environment["Conveyor__AdvertisedAddress"], "valueFrom", "fieldRef", "fieldPath"));
        Assert.Equal("http://collector:4317", Text(environment["OTEL_EXPORTER_OTLP_ENDPOINT"], "value"));
        Assert.Equal("demo-conveyor", Text(environment["Conveyor__Auth__BootstrapKey"], "valueFrom", "secretKeyRef", "name"));
        Assert.Equal("bootstrapKey", Text(environment["Conveyor__Auth__BootstrapKey"], "valueFrom", "secretKeyRef", "key"));
        Assert.Equal("secretsKey", Text(environment["Conveyor__Secrets__Key"], "valueFrom", "secretKeyRef", "key"));

        var secret = objects.Single(o => (string)o["kind"] == "Secret");
        Assert.Equal("demo-conveyor", Text(secret, "metadata", "name"));
        var bootstrap = Encoding.UTF8.GetString(Convert.FromBase64String(Text(secret, "data", "bootstrapKey")!));
        Assert.Equal(Text(Yaml(Keys), "auth", "bootstrapKey"), bootstrap);

        var pdb = objects.Single(o => (string)o["kind"] == "PodDisruptionBudget");
        Assert.Equal("1", Text(pdb, "spec", "maxUnavailable"));
        Assert.Equal((Dictionary<object, object>)At(deployment, "spec", "selector", "matchLabels")!, (Dictionary<object, object>)At(pdb, "spec", "selector", "matchLabels")!);
        var service = objects.Single(o => (string)o["kind"] == "Service");
        Assert.Equal("http", Text(service, "spec", "ports", "0", "targetPort"));
    }

    [Fact]
    public void The_helm_chart_takes_the_keys_from_an_existing_secret_and_refuses_to_render_without_any()
    {
        var objects = Render(Values("auth:\n  existingSecret: conveyor-keys\n"));
        Assert.DoesNotContain(objects, o => (string)o["kind"] == "Secret");
        var container = At(objects.Single(o => (string)o["kind"] == "Deployment"), "spec", "template", "spec", "containers", "0")!;
        var bootstrap = ((IList)At(container, "env")!).Cast<object>().Single(e => Text(e, "name") == "Conveyor__Auth__BootstrapKey");
        Assert.Equal("conveyor-keys", Text(bootstrap, "valueFrom", "secretKeyRef", "name"));

        var missing = Assert.Throws<InvalidOperationException>(() => Render(Values()));
        Assert.Contains("auth.bootstrapKey", missing.Message, StringComparison.Ordinal);
    }
}
