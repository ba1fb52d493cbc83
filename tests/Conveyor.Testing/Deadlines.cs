namespace Conveyor.Testing;

/// <summary>
/// How long a test waits for something that must happen. Generous on purpose: a deadline only decides how long a
/// failing test takes to say so, never whether a passing one passes, and a shared 2-core machine under a parallel build
/// is slow. Nothing may be asserted to NOT happen within a deadline; that is proved by a later event or a fake clock.
/// </summary>
public static class Deadlines
{
    /// <summary>For an event that a test has caused: a message, a result, a status, a process exit.</summary>
    public static readonly TimeSpan Event = TimeSpan.FromSeconds(60);

    /// <summary>For a host, server or driver to be up and ready.</summary>
    public static readonly TimeSpan Startup = TimeSpan.FromSeconds(60);
}
