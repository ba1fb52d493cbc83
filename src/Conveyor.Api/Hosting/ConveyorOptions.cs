using System.ComponentModel.DataAnnotations;

namespace Conveyor.Api.Hosting;

/// <summary>How the engine runs.</summary>
public enum ConveyorMode
{
    /// <summary>
    /// One silo with localhost clustering. Unless URLs are configured, the silo starts and supervises a local
    /// <c>nats-server</c> and <c>redis-server</c> with their data under <see cref="ConveyorOptions.DataDirectory"/>.
    /// </summary>
    SingleNode = 0,

    /// <summary>Many silos sharing one Redis (membership, grain state, reminders) and one external NATS.</summary>
    Cluster = 1,
}

/// <summary>Conveyor host configuration (section <c>Conveyor</c>; connection strings under <c>ConnectionStrings</c>).</summary>
public sealed class ConveyorOptions
{
    /// <summary>Configuration section.</summary>
    public const string Section = "Conveyor";

    /// <summary>Single node (default) or cluster.</summary>
    public ConveyorMode Mode { get; set; } = ConveyorMode.SingleNode;

    /// <summary>Where a single node keeps the data of the servers it supervises.</summary>
    [Required]
    public string DataDirectory { get; set; } = "conveyor-data";

    /// <summary>External NATS URL (also <c>ConnectionStrings:nats</c>); empty in single-node mode starts a local server.</summary>
    public string? NatsUrl { get; set; }

    /// <summary>External Redis connection string (also <c>ConnectionStrings:redis</c>); empty in single-node mode starts a local server.</summary>
    public string? RedisConnectionString { get; set; }

    /// <summary>Port of the supervised local NATS server; drivers connect here. 4222 is what the original's drivers expect.</summary>
    [Range(0, 65535)]
    public int LocalNatsPort { get; set; } = 4222;

    /// <summary>Port of the supervised local Redis server; 0 picks a free one at each start.</summary>
    [Range(0, 65535)]
    public int LocalRedisPort { get; set; }

    /// <summary><c>nats-server</c> executable (looked up on PATH when not rooted).</summary>
    public string NatsServerPath { get; set; } = "nats-server";

    /// <summary><c>redis-server</c> executable (looked up on PATH when not rooted).</summary>
    public string RedisServerPath { get; set; } = "redis-server";

    /// <summary>Orleans silo-to-silo port.</summary>
    [Range(1, 65535)]
    public int SiloPort { get; set; } = 11111;

    /// <summary>Orleans client gateway port.</summary>
    [Range(1, 65535)]
    public int GatewayPort { get; set; } = 30000;

    /// <summary>Address other silos reach this one at (cluster mode); the first non-loopback address when empty.</summary>
    public string? AdvertisedAddress { get; set; }

    /// <summary>Orleans cluster id: silos with the same id form one cluster.</summary>
    [Required]
    public string ClusterId { get; set; } = "conveyor";

    /// <summary>Orleans service id: stable across deployments (grain state keys include it).</summary>
    [Required]
    public string ServiceId { get; set; } = "conveyor";

    /// <summary>Largest accepted request body.</summary>
    [Range(1024, 64L * 1024 * 1024)]
    public long MaxRequestBodyBytes { get; set; } = 1024 * 1024;

    /// <summary>Metrics and traces (section <c>Conveyor:Telemetry</c>).</summary>
    public ConveyorTelemetryOptions Telemetry { get; set; } = new();

    /// <summary>API keys and rate limits (section <c>Conveyor:Auth</c>).</summary>
    public Conveyor.Api.Security.ConveyorAuthOptions Auth { get; set; } = new();

    /// <summary>The HTTP API's extras (section <c>Conveyor:Api</c>).</summary>
    public ConveyorApiOptions Api { get; set; } = new();
}

/// <summary>The HTTP API's extras (section <c>Conveyor:Api</c>).</summary>
public sealed class ConveyorApiOptions
{
    /// <summary>
    /// Serve a rendered reference of the OpenAPI document (Scalar) at <see cref="ReferencePath"/>, without a key.
    /// Off by default: the page is for people exploring the API, not for production traffic.
    /// </summary>
    public bool ReferencePage { get; set; }

    /// <summary>Where the reference page is served, under the API's prefix.</summary>
    [RegularExpression("^/[a-z0-9/-]+$")]
    public string ReferencePath { get; set; } = "/reference";
}

/// <summary>Settings the HTTP layer reads at request time.</summary>
public sealed class ConveyorApiSettings
{
    /// <summary>Largest accepted request body.</summary>
    public long MaxRequestBodyBytes { get; init; } = 1024 * 1024;

    /// <summary>Route prefix given to <c>MapConveyorApi</c> (null until it is called).</summary>
    public string? Prefix { get; set; }

    /// <summary>Full path of the reference page when it is served (its own trailing-slash rules apply there).</summary>
    public string? ReferencePath { get; set; }
}

/// <summary>Returned by <c>AddConveyor</c> for further configuration.</summary>
public interface IConveyorBuilder
{
    /// <summary>The host's services.</summary>
    Microsoft.Extensions.DependencyInjection.IServiceCollection Services { get; }

    /// <summary>The host's configuration.</summary>
    Microsoft.Extensions.Configuration.IConfiguration Configuration { get; }

    /// <summary>The resolved options.</summary>
    ConveyorOptions Options { get; }
}

/// <summary>The OTLP transports an OpenTelemetry collector accepts.</summary>
public enum ConveyorOtlpProtocol
{
    /// <summary>OTLP/gRPC (a collector's port 4317).</summary>
    Grpc = 0,

    /// <summary>OTLP/HTTP with protobuf bodies (a collector's port 4318): <c>POST /v1/traces</c>, <c>POST /v1/metrics</c>.</summary>
    HttpProtobuf = 1,
}

/// <summary>OpenTelemetry wiring of a Conveyor host (configuration section <c>Conveyor:Telemetry</c>).</summary>
public sealed class ConveyorTelemetryOptions
{
    /// <summary>
    /// Serve Conveyor's metrics in Prometheus text format at <see cref="MetricsPath"/> (on by default) — once the
    /// endpoint is added with <c>AddPrometheusEndpoint()</c> from the Conveyor.Prometheus package, which the standalone
    /// silo does.
    /// </summary>
    public bool Prometheus { get; set; } = true;

    /// <summary>Path of the Prometheus scraping endpoint, under the API's prefix.</summary>
    public string MetricsPath { get; set; } = "/metrics";

    /// <summary>
    /// Record traces (HTTP requests, runs, dispatches, result handling) even without an OTLP endpoint, e.g. for an
    /// exporter the host adds itself. Setting <see cref="OtlpEndpoint"/> turns tracing on too.
    /// </summary>
    public bool Tracing { get; set; }

    /// <summary>
    /// OTLP endpoint that receives traces and metrics; none by default. For <see cref="ConveyorOtlpProtocol.Grpc"/>
    /// the collector's address (e.g. <c>http://127.0.0.1:4317</c>); for <see cref="ConveyorOtlpProtocol.HttpProtobuf"/>
    /// its base URL (e.g. <c>http://127.0.0.1:4318</c>), to which <c>/v1/traces</c> and <c>/v1/metrics</c> are appended.
    /// </summary>
    public Uri? OtlpEndpoint { get; set; }

    /// <summary>
    /// When <see cref="OtlpEndpoint"/> is not set, export over OTLP to <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> (with the
    /// SDK's other <c>OTEL_EXPORTER_OTLP_*</c> variables) when that is set — unless the host already exports with
    /// <c>UseOtlpExporter()</c>, which then carries Conveyor's signals too. On by default.
    /// </summary>
    public bool OtlpFromEnvironment { get; set; } = true;

    /// <summary>How OTLP is sent: gRPC (default) or protobuf over HTTP.</summary>
    public ConveyorOtlpProtocol OtlpProtocol { get; set; } = ConveyorOtlpProtocol.Grpc;

    /// <summary>How often metrics are pushed to <see cref="OtlpEndpoint"/>.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "1.00:00:00")]
    public TimeSpan OtlpMetricsInterval { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// OpenTelemetry <c>service.name</c> to use when the environment names none (<c>OTEL_SERVICE_NAME</c> or
    /// <c>service.name</c> in <c>OTEL_RESOURCE_ATTRIBUTES</c> win). Not set by default, so an embedding host's own
    /// name stays; the standalone silo sets <c>conveyor</c>.
    /// </summary>
    public string? ServiceName { get; set; }
}
