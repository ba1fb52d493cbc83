using System.ComponentModel.DataAnnotations;
using Conveyor.Api.Endpoints;
using Conveyor.Api.Hosting;
using Conveyor.Api.Http;
using Conveyor.Api.Security;
using Conveyor.Grains.Nats;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Scalar.AspNetCore;
using Orleans.Configuration;

// Extension classes live in Microsoft.Extensions.Hosting for discoverability, as Orleans' own do.
namespace Microsoft.Extensions.Hosting;

/// <summary>Embeds Conveyor in any .NET host: <c>builder.AddConveyor()</c>, then <c>app.MapConveyorApi()</c>.</summary>
public static class ConveyorHostingExtensions
{
    // The 64 levels a request may nest, plus the envelopes an answer puts around stored JSON (run → steps → attempts).
    private const int ResponseMaxDepth = 64 + 32;

    /// <summary>
    /// Adds a Conveyor silo and its services to the host: options from the <c>Conveyor</c> section (then
    /// <paramref name="configure"/>), Orleans with Conveyor's grains, Redis storage and reminders, localhost or Redis
    /// clustering, and — in single-node mode without configured URLs — supervised local nats-server and redis-server.
    /// Idempotent: a second call returns the first call's builder.
    /// </summary>
    public static IConveyorBuilder AddConveyor(this IHostApplicationBuilder builder, Action<ConveyorOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var existing = builder.Services.FirstOrDefault(d => d.ServiceType == typeof(ConveyorBuilder))?.ImplementationInstance;
        if (existing is ConveyorBuilder already)
        {
            return already;
        }

        var options = new ConveyorOptions();
        builder.Configuration.GetSection(ConveyorOptions.Section).Bind(options);
        options.NatsUrl ??= NullIfEmpty(builder.Configuration.GetConnectionString("nats"));
        options.RedisConnectionString ??= NullIfEmpty(builder.Configuration.GetConnectionString("redis"));
        configure?.Invoke(options);
        Validate(options);

        var dataDirectory = Path.GetFullPath(options.DataDirectory, builder.Environment.ContentRootPath);
        int? localNats = null;
        int? localRedis = null;
        if (options.Mode == ConveyorMode.SingleNode)
        {
            if (string.IsNullOrEmpty(options.NatsUrl))
            {
                localNats = options.LocalNatsPort == 0 ? LocalServerProcess.FreePort() : options.LocalNatsPort;
                options.NatsUrl = $"nats://127.0.0.1:{localNats}";
            }

            if (string.IsNullOrEmpty(options.RedisConnectionString))
            {
                localRedis = options.LocalRedisPort == 0 ? LocalServerProcess.FreePort() : options.LocalRedisPort;
                options.RedisConnectionString = $"127.0.0.1:{localRedis}";
            }
        }

        var conveyor = new ConveyorBuilder(builder.Services, builder.Configuration, options);
        var services = builder.Services;
        services.AddSingleton(conveyor);
        services.AddSingleton(options);
        services.AddSingleton(new ConveyorApiSettings { MaxRequestBodyBytes = options.MaxRequestBodyBytes });
        services.TryAddSingleton(TimeProvider.System);
        services.AddProblemDetails();

        // Request bodies are read with their own 64-level limit (JsonBody); an answer wraps what was stored (a schema, a
        // spec, result data) in a few more levels, so the writer must allow more than any accepted input can need.
        services.PostConfigure<Microsoft.AspNetCore.Http.Json.JsonOptions>(o =>
            o.SerializerOptions.MaxDepth = Math.Max(o.SerializerOptions.MaxDepth, ResponseMaxDepth));
        ConveyorOpenApi.Add(services);
        services.AddSingleton<IStartupFilter, ConveyorStartupFilter>();
        services.AddSingleton<ConveyorReadiness>();
        services.AddHealthChecks().AddCheck<ConveyorHealthCheck>(ConveyorHealthCheck.Name, tags: ConveyorHealthCheck.Tags);
        AddSecurity(services, options, dataDirectory);

        if (localNats is not null || localRedis is not null)
        {
            // Registered before UseOrleans: hosted services start in registration order and stop in reverse.
            services.AddSingleton(new LocalServerPlan
            {
                DataDirectory = dataDirectory,
                NatsPort = localNats,
                RedisPort = localRedis,
                NatsServerPath = options.NatsServerPath,
                RedisServerPath = options.RedisServerPath,
            });
            services.AddSingleton<LocalServerSupervisor>();
            services.AddHostedService(sp => sp.GetRequiredService<LocalServerSupervisor>());
        }

        services.PostConfigure<ConveyorNatsOptions>(n => n.Url = options.NatsUrl!);
        ConveyorTelemetrySetup.Add(services, options.Telemetry, builder.Configuration);
        if (options.Mode == ConveyorMode.SingleNode)
        {
            // A single node keeps a generated secrets key next to its data unless one is configured.
            services.PostConfigure<Conveyor.Grains.Security.ConveyorSecretsOptions>(s =>
            {
                if (string.IsNullOrWhiteSpace(s.Key))
                {
                    s.KeyFile ??= Path.Combine(dataDirectory, "secrets.key");
                }
            });
        }

        builder.UseOrleans(silo =>
        {
            silo.Configure<ClusterOptions>(c =>
            {
                c.ClusterId = options.ClusterId;
                c.ServiceId = options.ServiceId;
            });
            // Failure detection and call timeouts are Orleans' own options; exposed so an operator (or a test) can make
            // a dead silo be declared dead in seconds rather than the default tens of seconds.
            silo.Services.AddOptions<ClusterMembershipOptions>().Configure(ConveyorMembershipDefaults.Apply).BindConfiguration(ConveyorOptions.Section + ":Membership");
            silo.Services.AddOptions<SiloMessagingOptions>().BindConfiguration(ConveyorOptions.Section + ":Messaging");
            if (options.Mode == ConveyorMode.Cluster)
            {
                silo.UseConveyorRedisClustering(options.RedisConnectionString!);
                SiloEndpoints.ConfigureCluster(silo, options);
            }
            else
            {
                silo.UseLocalhostClustering(options.SiloPort, options.GatewayPort, serviceId: options.ServiceId, clusterId: options.ClusterId);
            }

            SiloEndpoints.ConfigureTls(silo, options);
            silo.UseConveyorRedisStorage(options.RedisConnectionString!);
            silo.AddConveyorGrains();
        });

        // After UseOrleans: hosted services start in registration order, and this one needs the silo.
        services.AddHostedService<BootstrapKeyService>();
        return conveyor;
    }

    /// <summary>
    /// Maps Conveyor's HTTP API under <paramref name="prefix"/> (empty: at the root, where the original's clients
    /// expect it): the original routes in the <c>default</c> namespace, the same routes under
    /// <c>/namespaces/{namespace}</c>, run routes, health routes and the OpenAPI document at <c>/openapi/conveyor.json</c>.
    /// Returns the group so the host can chain e.g. <c>RequireAuthorization()</c>.
    /// </summary>
    /// <exception cref="InvalidOperationException"><c>AddConveyor</c> was not called.</exception>
    public static RouteGroupBuilder MapConveyorApi(this IEndpointRouteBuilder endpoints, string prefix = "")
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var settings = endpoints.ServiceProvider.GetService<ConveyorApiSettings>()
            ?? throw new InvalidOperationException("Conveyor's services are missing: call builder.AddConveyor() before app.MapConveyorApi().");
        prefix = NormalizePrefix(prefix);
        settings.Prefix = prefix;

        var root = endpoints.MapGroup(prefix);
        // Conveyor's routes are in its own OpenAPI document only, never in the host's (see ConveyorOpenApi.Add).
        root.WithGroupName(ConveyorOpenApi.DocumentName);
        root.AddEndpointFilter<ConveyorErrorFilter>();
        // One policy for every route: the endpoint's role metadata and the namespace decide (ConveyorAuthorizationHandler).
        root.RequireAuthorization(ConveyorAuthorizationHandler.PolicyName);
        var rateLimit = endpoints.ServiceProvider.GetRequiredService<WriteRateLimitFilter>();
        root.AddEndpointFilter(rateLimit.InvokeAsync);
        root.AddEndpointFilter(endpoints.ServiceProvider.GetRequiredService<AuditTrail>().InvokeAsync);
        root.AddEndpointFilter(endpoints.ServiceProvider.GetRequiredService<ReadRateLimitFilter>().InvokeAsync);
        root.MapSystemApi();
        // Only the document that exists: an unknown name then falls through to routing's 404, which becomes a problem like
        // every other, instead of the OpenAPI endpoint's own text/plain 404.
        // Ordered first: a host's own MapOpenApi() at the root ("/openapi/{documentName}.json") matches this path too.
        root.MapOpenApi("/openapi/{documentName:regex(^conveyor$)}.json").WithOrder(-1).Anonymous();
        var options = endpoints.ServiceProvider.GetRequiredService<ConveyorOptions>();
        if (options.Api.ReferencePage)
        {
            // A rendered reference of the document above, for people exploring the API; it needs no key, like the document.
            settings.ReferencePath = prefix + options.Api.ReferencePath;
            root.MapScalarApiReference(options.Api.ReferencePath, o => o
                    .WithTitle("Conveyor API")
                    .WithOpenApiRoutePattern(prefix + "/openapi/{documentName}.json")
                    .AddDocument(ConveyorOpenApi.DocumentName, "Conveyor"))
                .Anonymous();
        }

        foreach (var contribution in endpoints.ServiceProvider.GetServices<ConveyorRouteContribution>())
        {
            contribution.Map(root, options);
        }

        root.MapKeysApi();
        root.MapNamespacesApi();
        MapObjects(root, "");
        root.MapOriginalLogsApi();
        root.MapStepSecretsApi();
        root.MapHooksApi();
        root.MapAuditApi();
        var namespaced = root.MapGroup("/namespaces/{namespace}");
        var namespaceFilter = new NamespaceFilter(endpoints.ServiceProvider.GetRequiredService<IGrainFactory>());
        namespaced.AddEndpointFilter(namespaceFilter.InvokeAsync);
        MapObjects(namespaced, "InNamespace");
        return root;
    }

    private const string OpenApiDocumentName = "conveyor";

    /// <summary>
    /// Conveyor's OpenAPI document, which holds Conveyor's routes only: they carry its group name, and the document
    /// takes nothing else. A host's own documents leave them out, since by default a document takes the routes with no
    /// group name or its own.
    /// </summary>
    private static void AddOpenApiDocument(IServiceCollection services) =>
        services.AddOpenApi(OpenApiDocumentName, o => o.ShouldInclude = d => d.GroupName == OpenApiDocumentName);

    private static void AddSecurity(IServiceCollection services, ConveyorOptions options, string dataDirectory)
    {
        var settings = new ConveyorAuthSettings
        {
            Enabled = options.Auth.Enabled ?? options.Mode == ConveyorMode.Cluster,
            Options = options.Auth,
            BootstrapKeyFile = Path.GetFullPath(options.Auth.BootstrapKeyFile ?? Path.Combine(dataDirectory, "bootstrap-admin.key"), dataDirectory),
        };
        services.AddSingleton(settings);
        services.AddSingleton<WriteRateLimitFilter>();
        services.AddSingleton<ClientAddressLimiter>();
        services.AddSingleton<UnknownApiKeys>();
        services.AddSingleton<WebhookGuard>();
        services.AddSingleton<IStartupFilter, LocalAccessGuard>();
        // Before the silo and the supervised servers: a host that must not start starts nothing.
        services.AddHostedService<LocalAccessGuard.StartCheck>();
        services.AddSingleton<AuditTrail>();
        services.AddConveyorReadLimits();
        // A named scheme and a named policy: a host's own authentication and endpoints are left as they are. Not
        // AddAuthentication(): that also adds ASP.NET Core data protection, whose hosted service creates a key ring
        // (an XML key file in the user's profile) at every start, for cookies the API never issues; a host that uses
        // cookies adds it itself.
        services.AddAuthenticationCore();
        services.AddWebEncoders();
        new AuthenticationBuilder(services).AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null);
        services.AddAuthorizationBuilder().AddPolicy(ConveyorAuthorizationHandler.PolicyName, policy => policy
            .AddAuthenticationSchemes(ApiKeyAuthenticationHandler.SchemeName)
            .AddRequirements(new ConveyorAccessRequirement()));
        services.AddSingleton<IAuthorizationHandler, ConveyorAuthorizationHandler>();
    }

    private static void MapObjects(IEndpointRouteBuilder routes, string nameSuffix)
    {
        routes.MapResourceDefinitionsApi(nameSuffix);
        routes.MapResourcesApi(nameSuffix);
        routes.MapPipelinesApi(nameSuffix);
        routes.MapRunsApi(nameSuffix);
        routes.MapRunControlApi(nameSuffix);
        routes.MapLifecycleApi(nameSuffix);
        routes.MapRunLogsApi(nameSuffix);
        routes.MapSecretsApi(nameSuffix);
    }

    private static string NormalizePrefix(string prefix)
    {
        prefix = (prefix ?? "").Trim().TrimEnd('/');
        return prefix.Length == 0 || prefix.StartsWith('/') ? prefix : "/" + prefix;
    }

    private static void Validate(ConveyorOptions options)
    {
        var results = new List<ValidationResult>();
        if (!Validator.TryValidateObject(options, new ValidationContext(options), results, validateAllProperties: true))
        {
            throw new InvalidOperationException("Invalid Conveyor configuration: " + string.Join("; ", results.Select(r => r.ErrorMessage)));
        }

        if (!Validator.TryValidateObject(options.Auth, new ValidationContext(options.Auth), results, validateAllProperties: true))
        {
            throw new InvalidOperationException("Invalid Conveyor configuration (Conveyor:Auth): " + string.Join("; ", results.Select(r => r.ErrorMessage)));
        }

        if (!Validator.TryValidateObject(options.Audit, new ValidationContext(options.Audit), results, validateAllProperties: true))
        {
            throw new InvalidOperationException("Invalid Conveyor configuration (Conveyor:Audit): " + string.Join("; ", results.Select(r => r.ErrorMessage)));
        }

        if (!Validator.TryValidateObject(options.Webhooks, new ValidationContext(options.Webhooks), results, validateAllProperties: true))
        {
            throw new InvalidOperationException("Invalid Conveyor configuration (Conveyor:Webhooks): " + string.Join("; ", results.Select(r => r.ErrorMessage)));
        }

        if (!Validator.TryValidateObject(options.Api, new ValidationContext(options.Api), results, validateAllProperties: true))
        {
            throw new InvalidOperationException("Invalid Conveyor configuration (Conveyor:Api): " + string.Join("; ", results.Select(r => r.ErrorMessage)));
        }

        if (!Validator.TryValidateObject(options.Telemetry, new ValidationContext(options.Telemetry), results, validateAllProperties: true))
        {
            throw new InvalidOperationException("Invalid Conveyor configuration (Conveyor:Telemetry): " + string.Join("; ", results.Select(r => r.ErrorMessage)));
        }

        if (!string.IsNullOrEmpty(options.Auth.BootstrapKey) && !ApiKeys.TryParse(options.Auth.BootstrapKey, out _, out _))
        {
            // Never echoed: it is (meant to be) a secret.
            throw new InvalidOperationException(
                $"Invalid Conveyor configuration: Conveyor:Auth:BootstrapKey must look like cvk_<id>_<secret>: lowercase letters and digits in the id, and a secret of at least {ApiKeys.MinSecretLength} random base64url characters (128 bits or more).");
        }

        if (options.Mode == ConveyorMode.Cluster && (string.IsNullOrEmpty(options.NatsUrl) || string.IsNullOrEmpty(options.RedisConnectionString)))
        {
            throw new InvalidOperationException(
                "Invalid Conveyor configuration: cluster mode needs an external NATS and Redis: set ConnectionStrings:nats and ConnectionStrings:redis " +
                "(or Conveyor:NatsUrl and Conveyor:RedisConnectionString).");
        }
    }

    private static string? NullIfEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;

    private sealed class ConveyorBuilder(IServiceCollection services, IConfiguration configuration, ConveyorOptions options) : IConveyorBuilder
    {
        public IServiceCollection Services { get; } = services;

        public IConfiguration Configuration { get; } = configuration;

        public ConveyorOptions Options { get; } = options;
    }
}
