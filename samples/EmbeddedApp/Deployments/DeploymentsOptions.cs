using System.ComponentModel.DataAnnotations;

namespace Shipyard.Deployments;

/// <summary>How deployments map onto Conveyor (section <c>Deployments</c>).</summary>
internal sealed class DeploymentsOptions
{
    public const string Section = "Deployments";

    private const string DnsLabel = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$";

    /// <summary>Conveyor resource type of a deployment; its definition is applied at start.</summary>
    [Required]
    [RegularExpression(DnsLabel)]
    public string ResourceType { get; set; } = "service";

    /// <summary>Conveyor pipeline every deployment runs; applied at start.</summary>
    [Required]
    [RegularExpression(DnsLabel)]
    public string Pipeline { get; set; } = "deploy";

    /// <summary>Driver of the pipeline's first step.</summary>
    [Required]
    [RegularExpression(DnsLabel)]
    public string BuildDriver { get; set; } = "build";

    /// <summary>Driver of the pipeline's second step.</summary>
    [Required]
    [RegularExpression(DnsLabel)]
    public string DeployDriver { get; set; } = "deploy";
}
