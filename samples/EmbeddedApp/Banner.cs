using Microsoft.AspNetCore.Http.HttpResults;

namespace Shipyard;

/// <summary>The home page: one line saying what the app offers.</summary>
internal static class Banner
{
    public const string Text = "Shipyard: POST /deployments {\"service\":\"web\",\"image\":\"nginx:1.27\"} to deploy; the workflow engine answers under /conveyor.";

    public static ContentHttpResult Get() => TypedResults.Text(Text + "\n");
}
