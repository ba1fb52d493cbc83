using System.Net;

namespace Conveyor.IntegrationTests;

/// <summary>The rendered API reference is off unless <c>Conveyor:Api:ReferencePage</c> turns it on (tested on in Conveyor.OpenApi.Tests).</summary>
[Collection(EngineCollection.Name)]
public sealed class ReferencePageTests(EngineFixture fx)
{
    [Theory]
    [InlineData("/reference")]
    [InlineData("/reference/")]
    [InlineData("/reference/conveyor")]
    public async Task The_reference_page_is_not_served_by_default(string path)
    {
        using var response = await fx.Host.Http.GetAsync(path);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task The_openapi_document_is_served_without_a_key_and_names_the_product()
    {
        var document = await fx.Host.GetJsonAsync("/openapi/conveyor.json");

        Assert.StartsWith("3.1", document.GetProperty("openapi").GetString(), StringComparison.Ordinal);
        Assert.Equal("Conveyor", document.GetProperty("info").GetProperty("title").GetString());
    }
}
