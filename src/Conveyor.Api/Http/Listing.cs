using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Catalog;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Conveyor.Api.Http;

/// <summary>
/// Lists definitions, pipelines and resources from the object catalog, one page at a time: a page reads one range of
/// the catalog and the objects on it, whatever the number of objects. An entry whose object is gone, or now listed
/// under another filter value, is repaired by its grain and left out.
/// </summary>
internal static class Listing
{
    /// <summary>Page size when none is asked for.</summary>
    public const int DefaultLimit = 100;

    /// <summary>Largest page.</summary>
    public const int MaxLimit = 500;

    /// <summary>501 when the host keeps grain state outside Redis (no catalog), else null.</summary>
    public static ProblemHttpResult? Unavailable(IObjectCatalog catalog) => catalog.IsAvailable
        ? null
        : Problems.Create(StatusCodes.Status501NotImplemented, "not-implemented", "Listing is unavailable.", "listing needs the Redis catalog (UseConveyorRedisStorage)");

    /// <summary>The page size, or a validation error naming <c>limit</c>.</summary>
    public static int Limit(int? limit) => limit switch
    {
        null => DefaultLimit,
        >= 1 and <= MaxLimit => limit.Value,
        _ => throw new ConveyorValidationException("limit", $"'limit' must be between 1 and {MaxLimit}"),
    };

    /// <summary>A name prefix (lowercase letters, digits and '-'), or a validation error naming <paramref name="field"/>.</summary>
    public static string? Prefix(string? prefix, string field = "prefix")
    {
        if (string.IsNullOrEmpty(prefix))
        {
            return null;
        }

        if (prefix.Length > Names.MaxLength || !prefix.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-'))
        {
            throw new ConveyorValidationException(field, $"'{field}' must be the start of a name: up to {Names.MaxLength} lowercase letters, digits or '-' (got '{Names.Truncate(prefix)}')");
        }

        return prefix;
    }

    /// <summary>A filter that is a name, or a validation error naming <paramref name="field"/>; null when absent.</summary>
    public static string? Name(string? value, string field)
    {
        if (string.IsNullOrEmpty(value))
        {
            return null;
        }

        Names.Validate(value, field);
        return value;
    }

    /// <summary>
    /// The objects behind a page of members, in page order: each read as it is (an interleaved read), and the entries
    /// that show nothing or something listed elsewhere repaired by their grain (which waits for a write in progress,
    /// so an object being stored is shown rather than unlisted).
    /// </summary>
    public static async Task<List<T>> LoadAsync<T>(
        IReadOnlyList<string> members,
        Func<string, Task<T?>> read,
        Func<T, bool> matches,
        Func<string, Task<T?>> repair)
        where T : class
    {
        var loaded = await Task.WhenAll(members.Select(async member =>
        {
            var value = await read(member).ConfigureAwait(false);
            if (value is null || !matches(value))
            {
                value = await repair(member).ConfigureAwait(false);
            }

            return value is not null && matches(value) ? value : null;
        })).ConfigureAwait(false);
        return [.. loaded.OfType<T>()];
    }
}
