namespace Conveyor.Cli;

/// <summary>Exit codes of <c>conveyor</c>, stable for scripts.</summary>
internal static class ExitCodes
{
    /// <summary>Done; a watched or awaited run succeeded; <c>diff</c> found no differences.</summary>
    public const int Ok = 0;

    /// <summary>A watched or awaited run ended Failed, Cancelled or TimedOut.</summary>
    public const int RunFailed = 1;

    /// <summary><c>diff</c> found differences (as <c>diff(1)</c> and <c>kubectl diff</c> say it).</summary>
    public const int Differences = 1;

    /// <summary>The command line or an input file is invalid (nothing was sent for a bad file).</summary>
    public const int Usage = 2;

    /// <summary>The server refused the request (its problem details are printed), or has no such object.</summary>
    public const int ApiError = 3;

    /// <summary>The server could not be reached, did not answer in time, or a followed log ended early and could not be resumed.</summary>
    public const int Unreachable = 4;
}
