using System.Text;
using Conveyor.Api.Http;
using Conveyor.Grains.Abstractions;
using Microsoft.AspNetCore.Http;
using Xunit;

namespace Conveyor.UnitTests;

public sealed class JsonBodyTests
{
    private sealed record Body(string Text);

    private static HttpRequest Request(byte[] body, bool sendLength)
    {
        var context = new DefaultHttpContext();
        context.Request.ContentType = "application/json";
        context.Request.Body = new MemoryStream(body);
        if (sendLength)
        {
            context.Request.ContentLength = body.Length;
        }

        return context.Request;
    }

    private static byte[] Json(int textLength) => Encoding.UTF8.GetBytes($$"""{"text":"{{new string('x', textLength)}}"}""");

    [Theory]
    [InlineData(0, true)]
    [InlineData(0, false)]
    [InlineData(8181, false)] // 8,192 bytes: exactly the pooled first buffer without a length
    [InlineData(300_000, false)] // many times the first buffer, no length to size it by
    [InlineData(300_000, true)] // more than the largest first buffer a claimed length gets
    public async Task A_body_of_any_size_under_the_limit_is_read_whole(int textLength, bool sendLength)
    {
        var body = await JsonBody.ReadAsync<Body>(Request(Json(textLength), sendLength), limit: 1024 * 1024);
        Assert.Equal(textLength, body.Text.Length);
        Assert.All(body.Text, c => Assert.Equal('x', c));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_body_of_exactly_the_limit_is_read_and_one_byte_more_is_refused(bool sendLength)
    {
        var exact = Json(5000);
        var limit = exact.Length;
        Assert.Equal(5000, (await JsonBody.ReadAsync<Body>(Request(exact, sendLength), limit)).Text.Length);

        var over = Json(5001);
        var refused = await Assert.ThrowsAsync<PayloadTooLargeException>(() => JsonBody.ReadAsync<Body>(Request(over, sendLength), limit));
        Assert.Equal(limit, refused.Limit);
    }

    [Fact]
    public async Task A_body_longer_than_its_claimed_length_is_still_held_to_the_limit()
    {
        var request = Request(Json(10_000), sendLength: false);
        request.ContentLength = 10; // the claim sizes the first buffer only
        await Assert.ThrowsAsync<PayloadTooLargeException>(() => JsonBody.ReadAsync<Body>(request, limit: 2000));
    }

    [Fact]
    public async Task An_empty_body_is_a_validation_error()
    {
        var error = await Assert.ThrowsAsync<ConveyorValidationException>(() => JsonBody.ReadAsync<Body>(Request([], sendLength: false), limit: 100));
        Assert.Contains("empty", error.Message, StringComparison.Ordinal);
    }
}
