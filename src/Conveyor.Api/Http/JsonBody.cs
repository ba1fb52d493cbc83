using System.Buffers;
using System.Text.Json;
using Conveyor.Grains.Abstractions;
using Microsoft.AspNetCore.Http;

namespace Conveyor.Api.Http;

/// <summary>
/// Reads JSON request bodies with a size limit. A missing Content-Type is accepted (the original's Rust SDK sends
/// none); a non-JSON one is refused. Every failure becomes a <see cref="ConveyorException"/> the error filter maps.
/// </summary>
internal static class JsonBody
{
    private const int InitialSize = 4096;

    // A Content-Length is only a claim until the bytes come: the first buffer is at most this, and grows as they do.
    private const int MaxInitialSize = 64 * 1024;

    /// <summary>Options for request and response bodies: case-insensitive names like Go's decoder, bounded depth.</summary>
    public static JsonSerializerOptions Options { get; } = new(JsonSerializerDefaults.Web)
    {
        PropertyNameCaseInsensitive = true,
        MaxDepth = 64,
        AllowTrailingCommas = false,
        ReadCommentHandling = JsonCommentHandling.Disallow,
    };

    /// <summary>Reads and deserializes the body, or throws a client error.</summary>
    public static async Task<T> ReadAsync<T>(HttpRequest request, long limit, CancellationToken cancellationToken = default)
        where T : class
    {
        ArgumentNullException.ThrowIfNull(request);
        var contentType = request.ContentType;
        if (!string.IsNullOrEmpty(contentType) && !IsJson(contentType))
        {
            throw new UnsupportedMediaTypeException(contentType);
        }

        if (request.ContentLength > limit)
        {
            throw new PayloadTooLargeException(limit);
        }

        // A pooled buffer, sized by Content-Length when the client sent one (and a byte more, so the end of the body is
        // read without growing it): a fresh growable buffer cost about 16 KB per request, a 4 KB array replaced at once
        // by a 12 KB one. One byte more than the limit is enough to tell that a body is too large.
        var cap = (int)Math.Min(limit, Array.MaxLength - 1) + 1;
        var rented = ArrayPool<byte>.Shared.Rent((int)Math.Clamp((request.ContentLength ?? InitialSize) + 1, 1, Math.Min(cap, MaxInitialSize)));
        try
        {
            var written = 0;
            while (true)
            {
                if (written == rented.Length)
                {
                    var larger = ArrayPool<byte>.Shared.Rent((int)Math.Min(rented.Length * 2L, cap));
                    rented.AsSpan(0, written).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(rented);
                    rented = larger;
                }

                var read = await request.Body.ReadAsync(rented.AsMemory(written), cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }

                written += read;
                if (written > limit)
                {
                    throw new PayloadTooLargeException(limit);
                }
            }

            if (written == 0)
            {
                throw new ConveyorValidationException("body", "the request body is empty; send a JSON object");
            }

            return Deserialize<T>(rented.AsSpan(0, written));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    private static T Deserialize<T>(ReadOnlySpan<byte> body)
        where T : class
    {
        try
        {
            return JsonSerializer.Deserialize<T>(body, Options)
                ?? throw new ConveyorValidationException("body", "the request body is null; send a JSON object");
        }
        catch (JsonException ex)
        {
            var path = string.IsNullOrEmpty(ex.Path) ? "body" : ex.Path.TrimStart('$').TrimStart('.');
            if (path.Length == 0)
            {
                path = "body";
            }

            throw new ConveyorValidationException(path, $"Invalid request payload: {Describe(ex)}");
        }
    }

    private static bool IsJson(string contentType)
    {
        var mediaType = contentType.Split(';', 2)[0].Trim();
        return mediaType.EndsWith("json", StringComparison.OrdinalIgnoreCase);
    }

    private static string Describe(JsonException ex)
    {
        // System.Text.Json's messages name CLR types; say what the client can act on instead.
        var where = string.IsNullOrEmpty(ex.Path) || ex.Path == "$" ? "the body" : $"'{ex.Path.TrimStart('$').TrimStart('.')}'";
        return ex.Message.Contains("could not be converted", StringComparison.Ordinal)
            ? $"{where} has the wrong type"
            : $"{where} is not valid JSON (line {ex.LineNumber + 1}, byte {ex.BytePositionInLine + 1})";
    }
}

/// <summary>The body exceeds the size limit (HTTP 413).</summary>
internal sealed class PayloadTooLargeException(long limit) : Exception($"the request body exceeds {limit} bytes")
{
    /// <summary>The limit in bytes.</summary>
    public long Limit { get; } = limit;
}

/// <summary>The body's Content-Type is not JSON (HTTP 415).</summary>
internal sealed class UnsupportedMediaTypeException(string contentType) : Exception($"Content-Type '{contentType}' is not JSON")
{
    /// <summary>The offending Content-Type.</summary>
    public string ContentType { get; } = contentType;
}
