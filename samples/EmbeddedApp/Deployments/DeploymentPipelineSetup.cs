using System.Text.Json;
using Conveyor.Grains.Abstractions;
using Microsoft.Extensions.Options;
using Orleans;

namespace Shipyard.Deployments;

/// <summary>
/// At start, makes sure Conveyor knows the feature's resource type and pipeline, writing each only when it is missing
/// or differs from what this version of the app needs, so restarts leave both (and the pipeline's revision) untouched.
/// </summary>
internal sealed partial class DeploymentPipelineSetup(
    IGrainFactory grains,
    IOptions<DeploymentsOptions> options,
    ILogger<DeploymentPipelineSetup> logger) : IHostedService
{
    private const string DefinitionVersion = "1.0.0";

    /// <summary>JSON Schema of a deployment's spec; Conveyor validates every deployment against it.</summary>
    private const string Schema = """
        {"type":"object","properties":{"service":{"type":"string","pattern":"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"},"image":{"type":"string","minLength":1}},"required":["service","image"],"additionalProperties":false}
        """;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        var definitionGrain = grains.GetGrain<IResourceDefinitionGrain>(Names.DefinitionKey(Names.DefaultNamespace, o.ResourceType));
        var definition = Definition(o);
        if (await definitionGrain.GetAsync().WaitAsync(cancellationToken) is { } stored && SameDefinition(stored, definition))
        {
            LogUpToDate(logger, "resource definition", o.ResourceType);
        }
        else
        {
            await definitionGrain.ApplyAsync(definition).WaitAsync(cancellationToken);
            LogApplied(logger, "resource definition", o.ResourceType);
        }

        var pipelineGrain = grains.GetGrain<IPipelineGrain>(Names.PipelineKey(Names.DefaultNamespace, o.Pipeline));
        var pipeline = Pipeline(o);
        if (await pipelineGrain.GetAsync().WaitAsync(cancellationToken) is { } current && SamePipeline(current, pipeline))
        {
            LogUpToDate(logger, "pipeline", o.Pipeline);
        }
        else
        {
            var revision = (await pipelineGrain.PutAsync(pipeline).WaitAsync(cancellationToken)).Revision;
            LogPipelineApplied(logger, o.Pipeline, revision);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private static ResourceDefinitionData Definition(DeploymentsOptions o) => new()
    {
        Name = o.ResourceType,
        Description = "A service deployed by Shipyard: which image of which service",
        Version = DefinitionVersion,
        Schema = Schema,
    };

    /// <summary>Build, then deploy (no <c>dependsOn</c>: Conveyor runs the steps in order, as the original does).</summary>
    private static PipelineSpec Pipeline(DeploymentsOptions o) => new()
    {
        Name = o.Pipeline,
        Description = "Build the image, then roll it out",
        Version = "1",
        ResourceType = o.ResourceType,
        Steps =
        [
            new StepSpec { Id = "build", Name = "build", Driver = o.BuildDriver },
            new StepSpec { Id = "deploy", Name = "deploy", Driver = o.DeployDriver, Params = """{"strategy":"rolling"}""" },
        ],
    };

    private static bool SameDefinition(ResourceDefinitionData a, ResourceDefinitionData b) =>
        a.Version == b.Version && a.Description == b.Description && JsonEquals(a.Schema, b.Schema);

    private static bool SamePipeline(PipelineSpec a, PipelineSpec b) =>
        a.ResourceType == b.ResourceType
        && a.Description == b.Description
        && a.Steps.Count == b.Steps.Count
        && a.Steps.Zip(b.Steps).All(s => s.First.Id == s.Second.Id && s.First.Name == s.Second.Name
            && s.First.Driver == s.Second.Driver && JsonEquals(s.First.Params, s.Second.Params));

    private static bool JsonEquals(string? a, string? b) =>
        a is null || b is null
            ? a is null && b is null
            : JsonElement.DeepEquals(JsonDocument.Parse(a).RootElement, JsonDocument.Parse(b).RootElement);

    [LoggerMessage(Level = LogLevel.Information, Message = "Conveyor {Kind} {Name} is up to date")]
    private static partial void LogUpToDate(ILogger logger, string kind, string name);

    [LoggerMessage(Level = LogLevel.Information, Message = "Applied Conveyor {Kind} {Name}")]
    private static partial void LogApplied(ILogger logger, string kind, string name);

    [LoggerMessage(Level = LogLevel.Information, Message = "Applied Conveyor pipeline {Pipeline} (revision {Revision})")]
    private static partial void LogPipelineApplied(ILogger logger, string pipeline, int revision);
}
