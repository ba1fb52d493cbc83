namespace Conveyor.Grains;

/// <summary>Names of the Orleans providers Conveyor's grains use.</summary>
public static class ConveyorStorage
{
    /// <summary>Grain storage provider holding definitions, resources, pipelines and runs.</summary>
    public const string Name = "conveyor";
}
