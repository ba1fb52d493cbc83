using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;

namespace Conveyor.Grains.Runs.Engine;

/// <summary>
/// The rules of one run, apart from any I/O: a DAG of steps with retries, timeouts, failure policies, admission and
/// cancellation. <see cref="Apply"/> takes one <see cref="RunInput"/> and the time, changes the state in memory and
/// returns a <see cref="RunDecision"/>: whether the state must be stored, and what must then be done
/// (<see cref="RunEffect"/>s) — the caller stores, then acts, in that order. The machine knows nothing of storage,
/// messaging, timers or logging, so every rule is tested by feeding it inputs.
/// </summary>
/// <remarks>
/// A transition costs O(what it changes), not O(steps): readiness is kept as per-step counts of unmet dependencies, due
/// times in a heap, in-flight and unpublished steps in sets, and the machine tracks which steps changed since the last
/// write so that storage writes only those. All of that is derived from the state in the constructor ("rebuild after a
/// reload" is a new machine) and never outlives it.
/// </remarks>
internal sealed partial class RunStateMachine
{
    private readonly RunMachineOptions _options;
    private readonly RunGraph _graph;

    private readonly HashSet<StepState> _dirty = new(ReferenceEqualityComparer.Instance);
    private readonly HashSet<StepState> _inFlight = new(ReferenceEqualityComparer.Instance);
    private readonly HashSet<StepState> _unpublished = new(ReferenceEqualityComparer.Instance);
    private readonly Queue<StepState> _settled = new();
    private readonly PriorityQueue<StepState, DateTimeOffset> _due = new();
    private readonly Dictionary<StepState, int> _unmet = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<string, (int Order, string Json)> _latestResults = new(StringComparer.Ordinal);
    private readonly List<CancelMessage> _cancels = [];
    private readonly List<CancelChild> _childCancels = [];
    private readonly List<(StepState? Step, string Previous, string Status, RunStatus RunStatus)> _transitions = [];
    private int _unsettled;
    private int _mainUnsettled;
    private bool _needsFullPass;
    private bool _waitingForDriver;

    // The decision the current Apply is making.
    private bool _persist;
    private Follow _follow;
    private List<RunEffect>? _before;
    private List<RunEffect>? _extra;
    private List<RunNote>? _notes;
    private List<RunReport>? _reports;

    /// <summary>What follows a stored transition, beyond the effects a handler names itself.</summary>
    [Flags]
    private enum Follow
    {
        None = 0,
        Index = 1,
        Events = 2,
        Transition = 4,
    }

    /// <summary>A machine over a stored run: every derived structure is rebuilt from it.</summary>
    public RunStateMachine(RunState run, RunMachineOptions options)
    {
        ArgumentNullException.ThrowIfNull(run);
        ArgumentNullException.ThrowIfNull(options);
        Run = run;
        _options = options;
        UpgradeStoredLayout(run);
        _graph = new RunGraph(run);
        Rebuild();
    }

    /// <summary>The state of the run (the machine changes it in place; the caller stores it).</summary>
    public RunState Run { get; }

    /// <summary>The run's DAG.</summary>
    public RunGraph Graph => _graph;

    /// <summary>Whether the run is started and unfinished: it has steps to dispatch, results to wait for or due times.</summary>
    public bool Active => Run.Committed && !Run.Status.IsTerminal();

    /// <summary>Whether a freshly loaded run has something to redo at once (dispatches, its index entry, events).</summary>
    public bool HasPendingWork => Active || Run.IndexedStatus != Run.Status || Run.Outbox.Count > 0;

    /// <summary>Steps waiting for a result.</summary>
    public int InFlightCount => _inFlight.Count;

    /// <summary>The steps changed since the last write: what the next write must store.</summary>
    public IReadOnlyCollection<StepState> ChangedSteps => _dirty;

    /// <summary>A new run of <paramref name="plan"/>, pending; the caller stores it.</summary>
    public static RunStateMachine Create(Guid runId, RunPlan plan, DateTimeOffset now, RunMachineOptions options)
    {
        ArgumentNullException.ThrowIfNull(plan);
        return new RunStateMachine(
            new RunState
            {
                RunId = runId,
                Plan = plan,
                Status = RunStatus.Pending,
                CreatedAt = now,
                RunAttempt = 1,
                Steps = plan.Pipeline.Steps.Select(s => new StepState { Id = s.Id }).ToList(),
            },
            options);
    }

    /// <summary>
    /// Applies one input at <paramref name="now"/>: changes the state and says what to store and do. A refused
    /// command (<see cref="RunDecision.Refusal"/>) changes nothing.
    /// </summary>
    public RunDecision Apply(RunInput input, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(input);
        IReadOnlyList<ApplyOutcome>? outcomes = null;
        string? refusal = null;
        switch (input)
        {
            case ApplyResults results:
                outcomes = OnResults(results.Results, now);
                break;
            case Tick:
                OnTick(now);
                break;
            case DispatchesSettled settled:
                OnDispatchesSettled(settled.Reports, now);
                break;
            case EventsPublished published:
                Run.Outbox.RemoveRange(0, Math.Min(published.Count, Run.Outbox.Count));
                Run.EventOutbox.RemoveRange(0, Math.Min(published.Batches, Run.EventOutbox.Count));
                break;
            case IndexSynced indexed:
                Run.IndexedStatus = indexed.Status;
                break;
            case Reconnected:
                OnReconnected(now);
                break;
            case KeepAliveTick:
                OnKeepAlive(now);
                break;
            case Heartbeat heartbeat:
                OnHeartbeat(heartbeat, now);
                break;
            case PrepareRun:
                _persist = true;
                break;
            case StartRun start:
                OnStart(start.TraceParent, now);
                break;
            case CommitChecked check:
                OnCommitChecked(check, now);
                break;
            case RetryRun retry:
                refusal = OnRetry(retry.TraceParent, now);
                break;
            case CancelRun cancel:
                refusal = OnCancel(cancel.Reason, now);
                break;
            case SlotGranted:
                OnSlotGranted(now);
                break;
            case Superseded superseded:
                OnSuperseded(superseded.By, now);
                break;
            case ApproveStep approve:
                refusal = OnApprove(approve, now);
                break;
            case PauseRun pause:
                refusal = OnPause(pause.By, now);
                break;
            case ResumeRun resume:
                refusal = OnResume(resume.By, now);
                break;
            case ChildEnded ended:
                OnChildEnded(ended, now);
                break;
            case ChildStartFailed failed:
                OnChildStartFailed(failed, now);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(input), input, "unknown run input");
        }

        return TakeDecision(outcomes, refusal, now);
    }

    /// <summary>The last write stored every changed step.</summary>
    public void Stored() => _dirty.Clear();

    /// <summary>A step by id.</summary>
    public StepState Step(string id) => _graph.Step(id);

    /// <summary>The run as listings show it.</summary>
    public RunSummary Summary() => new()
    {
        RunId = Run.RunId,
        Namespace = Run.Plan.Namespace,
        Pipeline = Run.Plan.Pipeline.Name,
        PipelineRevision = Run.Plan.Pipeline.Revision,
        ResourceType = Run.Plan.Resource.Type,
        ResourceName = Run.Plan.Resource.Name,
        Status = Run.Status,
        CreatedAt = Run.CreatedAt,
        FinishedAt = Run.FinishedAt,
        Message = Run.Message,
        ExpiresAt = Run.ExpiresAt,
        KeepLast = Run.Status.IsTerminal() ? RetentionRule.KeepLast(Run.Plan) : null,
    };

    /// <summary>The original's <c>driverresults.&lt;driver&gt;</c> entries: each driver's latest result.</summary>
    public Dictionary<string, string> DriverResults()
    {
        var results = new Dictionary<string, string>(_latestResults.Count, StringComparer.Ordinal);
        foreach (var (driver, latest) in _latestResults)
        {
            results["driverresults." + driver] = latest.Json;
        }

        return results;
    }

    /// <summary>When the run next needs waking: its deadline, the earliest live due time, or a driver that was missing.</summary>
    private DateTimeOffset? NextWake(DateTimeOffset now)
    {
        if (!Active)
        {
            return null;
        }

        var next = Run.DeadlineAt;
        // The heap's head may be an entry its step has moved past; those are dropped until a live one is on top.
        while (_due.TryPeek(out var step, out var at))
        {
            if (IsLive(step, at))
            {
                next = next is null || at < next ? at : next;
                break;
            }

            _due.Dequeue();
        }

        if (_waitingForDriver)
        {
            var retry = now + _options.DriverWaitInterval;
            next = next is null || retry < next ? retry : next;
        }

        return next;
    }

    /// <summary>
    /// Whether a due time is still the step's: an attempt's (or an approval's, or a child run's) deadline, or a
    /// retry's due time — except while the run is paused, when retries wait for the resume (which files them again).
    /// </summary>
    private bool IsLive(StepState step, DateTimeOffset at) =>
        (step.Status is StepStatus.Dispatched or StepStatus.Running or StepStatus.WaitingForApproval && step.DeadlineAt == at)
        || (step.Status == StepStatus.Retrying && step.NextAttemptAt == at && Run.Status != RunStatus.Paused);

    /// <summary>Ends the current Apply: collects what the stored transition reports, then lists the effects in order.</summary>
    private RunDecision TakeDecision(IReadOnlyList<ApplyOutcome>? outcomes, string? refusal, DateTimeOffset now)
    {
        if (_persist)
        {
            UpdateExpiry();
            CollectTransitions(now);
        }

        List<RunEffect>? effects = null;
        if ((_follow & (Follow.Index | Follow.Transition)) != 0 && Run.IndexedStatus != Run.Status)
        {
            (effects ??= []).Add(SyncIndex.Instance);
        }

        if ((_follow & (Follow.Events | Follow.Transition)) != 0 && (Run.Outbox.Count > 0 || Run.EventOutbox.Count > 0))
        {
            (effects ??= []).Add(PublishEvents.Instance);
        }

        if ((_follow & Follow.Transition) != 0)
        {
            AfterTransition(effects ??= [], now);
        }

        if (_extra is not null)
        {
            (effects ??= []).AddRange(_extra);
        }

        var decision = !_persist && effects is null && _reports is null && _before is null && outcomes is null && _notes is null && refusal is null
            ? RunDecision.None
            : new RunDecision(_persist, _before, effects, outcomes, _notes, _reports, refusal);
        _persist = false;
        _follow = Follow.None;
        _before = null;
        _extra = null;
        _notes = null;
        _reports = null;
        return decision;
    }

    /// <summary>
    /// After a stored transition: cancel messages, then either the end (slot and keepalive go) or the dispatches of
    /// every attempt not confirmed yet (the outbox, in declaration order, one batch) and the timer.
    /// </summary>
    private void AfterTransition(List<RunEffect> effects, DateTimeOffset now)
    {
        foreach (var cancel in _cancels)
        {
            effects.Add(new SendCancel(cancel));
        }

        _cancels.Clear();
        effects.AddRange(_childCancels);
        _childCancels.Clear();
        if (Run.Status.IsTerminal())
        {
            Note(new RunFinishedNote(Run.Status));
            if (Run.AdmissionKey is { } queue)
            {
                effects.Add(new ReleaseSlot(queue));
            }

            if (Run.Plan.ParentRunId is { } parent)
            {
                effects.Add(new NotifyParent(parent, ChildEndedOf()));
            }

            effects.Add(StopKeepAlive.Instance);
            return;
        }

        _waitingForDriver = false;
        var dispatched = false;
        if (_unpublished.Count > 0)
        {
            var unpublished = _unpublished.ToArray();
            if (unpublished.Length > 1)
            {
                // Declaration order, as a driver would expect among steps made ready together.
                Array.Sort(unpublished, (a, b) => _graph.OrderOf(a).CompareTo(_graph.OrderOf(b)));
            }

            foreach (var step in unpublished)
            {
                if (!step.Status.IsInFlight() || step.Current is not { Published: false } attempt)
                {
                    _unpublished.Remove(step);
                    continue;
                }

                effects.Add(new DispatchStep(step.Id, attempt.Number, _graph.Spec(step).Driver));
                dispatched = true;
            }
        }

        if (!dispatched)
        {
            effects.Add(new ArmTimer(NextWake(now)));
        }
    }

    /// <summary>Confirmed dispatches ride on the next write; a missing driver makes the timer come back soon.</summary>
    private void OnDispatchesSettled(IReadOnlyList<DispatchReport> reports, DateTimeOffset now)
    {
        var failed = false;
        foreach (var report in reports)
        {
            var step = _graph.FindStep(report.Step);
            if (step is null || !step.Status.IsInFlight() || step.Current is not { Published: false } attempt || attempt.Number != report.Attempt)
            {
                continue;
            }

            if (report.Error is { } error)
            {
                // It can never be published as it is: waiting for a driver would wait for ever.
                FailAttempt(step, error, timedOut: false, now, final: true);
                Note(new StepFinishedNote(step.Id, attempt.Number, step.Status));
                failed = true;
            }
            else if (report.Sequence is { } sequence)
            {
                attempt.Published = true;
                attempt.Sequence = sequence;
                attempt.PublishedAt = report.At;
                _unpublished.Remove(step);
                Touch(step);
            }
            else
            {
                _waitingForDriver = true;
            }
        }

        if (failed)
        {
            Advance(now);
            _persist = true;
            _follow = Follow.Transition;
            return;
        }

        Then(new ArmTimer(NextWake(now)));
    }

    /// <summary>
    /// NATS reconnected: dispatches published within the de-duplication window go out again (JetStream drops the copies
    /// it still has). Older ones were stored long before; the step timeout covers anything else.
    /// </summary>
    private void OnReconnected(DateTimeOffset now)
    {
        foreach (var step in _inFlight)
        {
            if (step.Current is { Published: true, PublishedAt: { } at } attempt && now - at < _options.RepublishWindow)
            {
                attempt.Published = false;
                _unpublished.Add(step);
                Touch(step);
            }
        }
    }

    private void Then(RunEffect effect) => (_extra ??= []).Add(effect);

    private void Note(RunNote note) => (_notes ??= []).Add(note);

    private void Report(RunReport report) => (_reports ??= []).Add(report);
}
