using System.ComponentModel.DataAnnotations;
using System.Reflection;
using System.Text.Json.Nodes;
using Conveyor.Api.Security;
using Conveyor.Client;
using Conveyor.Contracts;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.OpenApi;

namespace Conveyor.Api.Hosting;

/// <summary>
/// Completes Conveyor's OpenAPI 3.1 document where endpoint metadata cannot: the product's title and version, the
/// bearer scheme (API keys) applied to every operation that needs a key and the step-token scheme, every problem
/// answer an operation can give, the headers the routes read (webhook signature, idempotency keys), and enums for
/// the string members and query parameters that take a fixed set of values. A generated client then sends bodies,
/// keys and headers and reads every answer.
/// </summary>
internal static class ConveyorOpenApi
{
    public const string DocumentName = "conveyor";
    public const string BearerScheme = "bearer";
    public const string StepTokenScheme = "stepToken";
    private const string ProblemSchema = nameof(ConveyorProblem);
    private const string ProblemMediaType = "application/problem+json";

    /// <summary>
    /// Adds Conveyor's document, which holds Conveyor's routes only: they carry its group name, and the document takes
    /// nothing else. A host's own documents leave them out, since by default a document takes the routes with no group
    /// name or its own.
    /// </summary>
    public static void Add(IServiceCollection services) => services.AddOpenApi(DocumentName, options =>
    {
        options.ShouldInclude = d => d.GroupName == DocumentName;
        options.OpenApiVersion = OpenApiSpecVersion.OpenApi3_1;
        // Any JSON value (specs, schemas, params, step data) is an inline {} schema, not a component a generator would
        // turn into an empty class.
        options.CreateSchemaReferenceId = type =>
            (Nullable.GetUnderlyingType(type.Type) ?? type.Type) == typeof(System.Text.Json.JsonElement) ? null : OpenApiOptions.CreateDefaultSchemaReferenceId(type);
        options.AddDocumentTransformer(TransformDocumentAsync);
        options.AddOperationTransformer(TransformOperationAsync);
        options.AddSchemaTransformer(TransformSchema);
    });

    /// <summary>The version of the running build: the assembly's informational version, without build metadata.</summary>
    public static string ProductVersion()
    {
        var version = typeof(ConveyorOpenApi).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0.0.0";
        return version.Split('+', 2)[0];
    }

    private static async Task TransformDocumentAsync(OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken cancellationToken)
    {
        document.Info = new OpenApiInfo
        {
            Title = "Conveyor",
            Version = ProductVersion(),
            Description = "The HTTP API of Conveyor, a workflow-orchestration control plane: resource definitions, pipelines, "
                + "resources, runs, logs, secrets, keys and namespaces. Errors are RFC 7807 problem details.",
        };
        document.Components ??= new OpenApiComponents();
        document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
        document.Components.SecuritySchemes[BearerScheme] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.Http,
            Scheme = "bearer",
            BearerFormat = "cvk_<id>_<secret>",
            Description = "An API key; its role (viewer, operator, admin) and namespaces decide what it may do. Off on a single node by default.",
        };
        document.Components.SecuritySchemes[StepTokenScheme] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.Http,
            Scheme = "bearer",
            BearerFormat = "cvs1.<run|step|attempt|expiry>.<signature>",
            Description = "The step token of a dispatch: lets the step's driver read the secrets the step names while the attempt is in flight.",
        };
        document.Components.Schemas ??= new Dictionary<string, IOpenApiSchema>();
        if (!document.Components.Schemas.ContainsKey(ProblemSchema))
        {
            document.Components.Schemas[ProblemSchema] = await context.GetOrCreateSchemaAsync(typeof(ConveyorProblem), null, cancellationToken).ConfigureAwait(false);
        }
    }

    private static Task TransformOperationAsync(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken cancellationToken)
    {
        var metadata = context.Description.ActionDescriptor.EndpointMetadata;
        var name = metadata.OfType<IEndpointNameMetadata>().FirstOrDefault()?.EndpointName ?? "";
        var method = context.Description.HttpMethod ?? "GET";
        var write = method is not "GET" and not "HEAD";
        var anonymous = metadata.OfType<IAllowAnonymous>().Any();
        var hasBody = operation.RequestBody is not null;
        var hasPathParameters = context.Description.RelativePath?.Contains('{', StringComparison.Ordinal) == true;
        var document = context.Document;

        var problems = new SortedDictionary<int, string>
        {
            [400] = "The request is invalid: a parameter, header or body member is named in errors.",
        };
        if (hasPathParameters)
        {
            problems[404] = "The object (or the namespace) does not exist.";
        }

        if (write)
        {
            problems[409] = "The request conflicts with the current state (it exists, it already ended, …).";
        }

        if (hasBody)
        {
            problems[413] = "The body is larger than Conveyor:MaxRequestBodyBytes.";
            problems[415] = "The body's Content-Type is not JSON.";
        }

        if (name.StartsWith("List", StringComparison.Ordinal))
        {
            problems[501] = "Listing needs the Redis catalog and index (grain state kept elsewhere).";
        }

        if (!anonymous)
        {
            problems[401] = "No key, or a malformed, unknown or revoked one (WWW-Authenticate: Bearer).";
            problems[403] = "The key's role or namespaces do not allow this.";
            problems[429] = write
                ? "The key made more writes than its limit allows (Retry-After)."
                : "The key made more reads than its limit allows, or a log stream would exceed its key's or the silo's cap (Retry-After).";

            operation.Security ??= [];
            operation.Security.Add(new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(BearerScheme, document)] = [] });
        }

        switch (name)
        {
            case "DeliverWebhook":
                problems[401] = "X-Hub-Signature-256 is missing or does not match the body.";
                problems[422] = "The body lacks a mapped value, or maps to an invalid resource name or spec.";
                Header(operation, HooksSignatureHeader, "sha256= and the hex HMAC-SHA256 of the raw body under the hook's secret.", required: true);
                Header(operation, "X-GitHub-Delivery", "Delivery id: a redelivery with the same id starts nothing and answers the same run.");
                Header(operation, "Idempotency-Key", "Same as X-GitHub-Delivery, for senders that are not GitHub.");
                break;
            case "GetStepSecrets":
                problems[401] = "The step token is missing, invalid or expired.";
                problems[403] = "The attempt is over, or the step does not name the secret.";
                operation.Security ??= [];
                operation.Security.Add(new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(StepTokenScheme, document)] = [] });
                break;
            case var n when n.StartsWith("TriggerRun", StringComparison.Ordinal):
                Header(operation, "Idempotency-Key", "Repeating a trigger with the same key (per pipeline) answers the run the first one started, with 200.");
                break;
            case var n when n.StartsWith("StreamRunLogs", StringComparison.Ordinal):
                Header(operation, "Last-Event-ID", "Resume after this entry's seq (as ?after=).");
                break;
            case var n when n.StartsWith("StreamRunEvents", StringComparison.Ordinal) || n.StartsWith("StreamNamespaceEvents", StringComparison.Ordinal):
                Header(operation, "Last-Event-ID", "Resume after this event (as ?after=): every later transition, none twice.");
                break;
        }

        foreach (var parameter in operation.Parameters ?? [])
        {
            if (parameter is OpenApiParameter { In: ParameterLocation.Query, Schema: OpenApiSchema schema } p)
            {
                var values = (p.Name, name) switch
                {
                    ("status", _) => Enum.GetNames<RunStatus>(),
                    ("format", var n) when n.StartsWith("GetRunGraph", StringComparison.Ordinal) => ["svg", "mermaid", "dot"],
                    ("format", var n) when n.StartsWith("GetRunLogs", StringComparison.Ordinal) => ["json", "text"],
                    _ => null,
                };
                if (values is not null)
                {
                    schema.Enum = [.. values.Select(v => (JsonNode)JsonValue.Create(v))];
                }
            }
        }

        operation.Responses ??= [];
        foreach (var (status, description) in problems)
        {
            var key = status.ToString(System.Globalization.CultureInfo.InvariantCulture);
            if (operation.Responses.TryGetValue(key, out var existing) && existing is OpenApiResponse { Content: { } content })
            {
                // A problem response the endpoint declared itself (ProblemHttpResult): give it Conveyor's schema.
                content.Remove("application/json");
                content[ProblemMediaType] = new OpenApiMediaType { Schema = new OpenApiSchemaReference(ProblemSchema, document) };
                continue;
            }

            operation.Responses[key] = new OpenApiResponse
            {
                Description = description,
                Content = new Dictionary<string, OpenApiMediaType> { [ProblemMediaType] = new() { Schema = new OpenApiSchemaReference(ProblemSchema, document) } },
            };
        }

        return Task.CompletedTask;
    }

    private const string HooksSignatureHeader = "X-Hub-Signature-256";

    private static void Header(OpenApiOperation operation, string name, string description, bool required = false)
    {
        operation.Parameters ??= [];
        if (operation.Parameters.Any(p => p.Name == name))
        {
            return;
        }

        operation.Parameters.Add(new OpenApiParameter
        {
            Name = name,
            In = ParameterLocation.Header,
            Required = required,
            Description = description,
            Schema = new OpenApiSchema { Type = JsonSchemaType.String },
        });
    }

    /// <summary>
    /// Members that take a fixed set of strings (<see cref="AllowedValuesAttribute"/>) become enums; members that take
    /// any JSON value say that null is one.
    /// </summary>
    private static Task TransformSchema(OpenApiSchema schema, OpenApiSchemaTransformerContext context, CancellationToken cancellationToken)
    {
        if (context.JsonPropertyInfo?.PropertyType == typeof(System.Text.Json.JsonElement?))
        {
            // Any JSON value, null included, spelled out: generators read a bare {} as a non-null object.
            schema.Type = JsonSchemaType.Null | JsonSchemaType.Object | JsonSchemaType.Array | JsonSchemaType.String | JsonSchemaType.Number | JsonSchemaType.Boolean;
        }

        if (context.JsonPropertyInfo?.AttributeProvider?.GetCustomAttributes(typeof(AllowedValuesAttribute), inherit: false) is [AllowedValuesAttribute allowed, ..])
        {
            schema.Enum = [.. allowed.Values.OfType<string>().Select(v => (JsonNode)JsonValue.Create(v))];
        }

        return Task.CompletedTask;
    }
}
