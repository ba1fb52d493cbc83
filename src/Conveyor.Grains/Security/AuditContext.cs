namespace Conveyor.Grains.Security;

/// <summary>
/// The API key a request acts as, carried in Orleans' request context from the HTTP layer into every grain call the
/// request makes, so a grain that records who did something (a run's <c>triggeredBy</c>) needs no extra parameter.
/// </summary>
internal static class AuditContext
{
    /// <summary>Request-context key of the acting API key's id.</summary>
    public const string ActorKey = "conveyor.actor";

    /// <summary>The acting API key's id in the current call, or null (authentication off, a timer, a driver).</summary>
    public static string? Actor => RequestContext.Get(ActorKey) as string;
}
