using System.Globalization;
using System.Text;
using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;

namespace Conveyor.Grains.Runs.Engine;

/// <summary>
/// Nothing hangs or grows for ever: every attempt has a deadline (the step's timeout, else the default attempt
/// timeout, else a lease its driver's heartbeats renew), a result's data has a size limit, and a finished run has an
/// expiry.
/// </summary>
internal sealed partial class RunStateMachine
{
    /// <summary>How long one attempt of a step may take before it is cut: its own timeout, else the default; null: no limit.</summary>
    private TimeSpan? AttemptTimeout(StepSpec spec) => spec.Timeout ?? _options.DefaultAttemptTimeout;

    /// <summary>
    /// A heartbeat proves the dispatch arrived and the driver works on it: the step is <see cref="StepStatus.Running"/>,
    /// and an attempt of a step without its own timeout is kept alive for a lease from now (its first heartbeat
    /// replaces the default attempt timeout with the lease). To keep writes rare, the lease is moved — and stored — only
    /// once a quarter of it has passed; a step's own timeout is a hard limit and never moves.
    /// </summary>
    private void OnHeartbeat(Heartbeat beat, DateTimeOffset now)
    {
        if (!Active || Run.Status != RunStatus.Running)
        {
            return;
        }

        var step = _graph.FindStep(beat.Step);
        if (step is null || !step.Status.IsInFlight() || step.Current is not { } attempt || attempt.Number != beat.Attempt || attempt.Success is not null)
        {
            return;
        }

        var changed = false;
        if (!attempt.Published)
        {
            attempt.Published = true;
            attempt.PublishedAt ??= now;
            _unpublished.Remove(step);
            changed = true;
        }

        if (step.Status == StepStatus.Dispatched)
        {
            SetStatus(step, StepStatus.Running);
            changed = true;
        }

        if (_graph.Spec(step).Timeout is null && step.DeadlineAt is { } deadline)
        {
            var lease = LeaseFor(beat.Interval);
            var until = now + lease;
            var capped = false;
            if (_options.MaxAttemptDuration is { } max && attempt.DispatchedAt + max < until)
            {
                until = attempt.DispatchedAt + max;
                capped = true;
            }

            // The cap is reached in one last move, however small, so a live driver is not cut before it.
            if (attempt.LastHeartbeatAt is null || until - deadline >= lease / 4 || (capped && until > deadline))
            {
                step.DeadlineAt = until;
                _due.Enqueue(step, until);
                changed = true;
            }
        }

        if (changed)
        {
            attempt.LastHeartbeatAt = now;
            Touch(step);
            _persist = true;
            Then(new ArmTimer(NextWake(now)));
        }
    }

    /// <summary>The lease one heartbeat grants: the configured lease, and never less than three heartbeat intervals.</summary>
    private TimeSpan LeaseFor(TimeSpan? interval) =>
        interval is { } i && i > TimeSpan.Zero && i * 3 > _options.HeartbeatLease ? i * 3 : _options.HeartbeatLease;

    /// <summary>Why an attempt's deadline passed: its own timeout, the default one, or a lease its driver stopped renewing.</summary>
    private string TimeoutMessage(StepState step, AttemptState attempt)
    {
        var spec = _graph.Spec(step);
        if (spec.Timeout is { } own)
        {
            return $"attempt {attempt.Number} timed out after {own}";
        }

        if (attempt.LastHeartbeatAt is not null && _options.MaxAttemptDuration is { } max && step.DeadlineAt >= attempt.DispatchedAt + max)
        {
            return $"attempt {attempt.Number} ran for {max} (Conveyor:Runs:MaxAttemptDuration), the longest a step without a timeout of its own may run however its driver heart-beats";
        }

        return attempt.LastHeartbeatAt is { } last
            ? string.Create(CultureInfo.InvariantCulture, $"attempt {attempt.Number} timed out: driver {spec.Driver} sent no heartbeat since {last:O} (lease {_options.HeartbeatLease}, Conveyor:Runs:HeartbeatLease)")
            : $"attempt {attempt.Number} timed out after {_options.DefaultAttemptTimeout} (Conveyor:Runs:DefaultAttemptTimeout: the step sets no timeout and its driver sent no heartbeat)";
    }

    /// <summary>A result as applied: one whose data exceeds the size limit fails its attempt, and its data is not kept.</summary>
    private (bool Success, string Message, string? Data) LimitResultData(DriverResultInput result)
    {
        if (_options.MaxResultDataBytes is { } max && result.Data is { } data && data.Length > max / 3 && Encoding.UTF8.GetByteCount(data) is var size && size > max)
        {
            var said = string.IsNullOrEmpty(result.Message) ? "" : $"; the driver said: {Names.Truncate(result.Message)}";
            return (false, $"result data of {size} bytes exceeds the limit of {max} bytes (Conveyor:Limits:MaxResultDataBytes){said}", null);
        }

        return (result.Success, result.Message, result.Data);
    }

    /// <summary>
    /// Keeps the run's expiry in line with its status: set once when it ends (from its pipeline's, its namespace's or
    /// the default retention), cleared when it starts again.
    /// </summary>
    private void UpdateExpiry()
    {
        if (!Run.Status.IsTerminal())
        {
            Run.ExpiresAt = null;
        }
        else if (Run.ExpiresAt is null && Run.FinishedAt is { } finished)
        {
            Run.ExpiresAt = RetentionRule.ExpiresAt(Run.Plan, finished, _options.Retention);
        }
    }
}
