namespace Conveyor.Packaging.Tests;

/// <summary>
/// The tests that pack, publish and build run one after the other: each keeps both cores busy, and packing and
/// publishing the same projects at once would race on their restore output.
/// </summary>
[CollectionDefinition(Name)]
public sealed class PackagingCollection
{
    public const string Name = "packaging";
}
