using System.Globalization;
using Conveyor.Contracts;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Flow;
using Conveyor.Grains.Runs.Engine;
using TickInput = Conveyor.Grains.Runs.Engine.Tick;

namespace Conveyor.Engine.Tests;

/// <summary>
/// Drives one <see cref="RunStateMachine"/> the way the grain does, without any server: it hands the machine inputs at
/// given times (milliseconds after <see cref="Epoch"/>), and feeds back what the grain's effects report — the index
/// and the events as written, every dispatch as stored by JetStream (or not, for a driver listed in
/// <see cref="MissingDrivers"/>). Each call returns the decision as short strings, in order:
/// <c>persist</c>, <c>dispatch a#1</c>, <c>cancel a#1</c>, <c>arm @5000</c>, <c>arm none</c>, <c>index</c>, <c>events</c>,
/// <c>acquire q</c>, <c>release q</c>, <c>check-commit k</c>, <c>before register-keepalive</c>, <c>stop-keepalive</c>.
/// </summary>
internal sealed class RunHarness
{
    public static readonly DateTimeOffset Epoch = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private readonly Queue<double> _jitter = new();
    private ulong _sequence;

    public RunHarness(PipelineSpec pipeline, RunMachineOptions? options = null, string? runParams = null, string ns = "default", int depth = 0, Guid? parent = null)
    {
        Options = (options ?? new RunMachineOptions { EmitEvents = false, EmitRunEvents = false }) with { Jitter = NextJitter };
        var plan = new RunPlan
        {
            Namespace = ns,
            Pipeline = pipeline,
            Resource = new ResourceData { Id = "r-1", Name = "web", Type = "app", Spec = """{"image":"nginx"}""", Metadata = new() { ["version"] = "1" }, Version = 1 },
            Params = runParams,
            Depth = depth,
            ParentRunId = parent,
            ParentStep = parent is null ? null : "sub",
        };
        Machine = RunStateMachine.Create(RunId, plan, Epoch, Options);
    }

    public static Guid RunId { get; } = Guid.Parse("00000000-0000-0000-0000-0000000000aa");

    public RunMachineOptions Options { get; }

    public RunStateMachine Machine { get; private set; }

    public RunState Run => Machine.Run;

    /// <summary>Drivers without a consumer: their dispatches are not stored.</summary>
    public HashSet<string> MissingDrivers { get; } = [];

    /// <summary>Drivers whose dispatches exceed the server's maximum message size: they fail with this error.</summary>
    public Dictionary<string, string> OversizeDrivers { get; } = [];

    /// <summary>Ids of every CDEvent published, in order.</summary>
    public List<string> PublishedEvents { get; } = [];

    /// <summary>Every batch of run events published, in order.</summary>
    public List<RunEventBatch> PublishedBatches { get; } = [];

    /// <summary>Every metric report of every decision, in order.</summary>
    public List<RunReport> Reports { get; } = [];

    /// <summary>The last decision.</summary>
    public RunDecision? Last { get; private set; }

    /// <summary>Every decision's strings so far, each prefixed with its input.</summary>
    public List<string> Transcript { get; } = [];

    /// <summary>Jitter samples to use, in order (0.5, no jitter, when none is queued).</summary>
    public void QueueJitter(params double[] samples)
    {
        foreach (var sample in samples)
        {
            _jitter.Enqueue(sample);
        }
    }

    private double NextJitter() => _jitter.TryDequeue(out var sample) ? sample : 0.5;

    public static DateTimeOffset At(long ms) => Epoch.AddMilliseconds(ms);

    /// <summary>
    /// A pipeline from a compact form: space-separated steps <c>id[:dep,dep][/flag…]</c>; flags are <c>allow</c>
    /// (allowFailure), <c>r{n}</c> (retry n attempts, 1 s initial delay, doubling, no jitter), <c>t{ms}</c> (attempt
    /// timeout), <c>@{driver}</c> (driver; default <c>d-{id}</c>). Steps without <c>:</c> have no dependencies.
    /// </summary>
    public static PipelineSpec Pipeline(string steps, FailurePolicy policy = FailurePolicy.FailFast, TimeSpan? timeout = null, int? concurrency = null)
    {
        var specs = new List<StepSpec>();
        foreach (var token in steps.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = token.Split('/');
            var head = parts[0].Split(':');
            var spec = new StepSpec
            {
                Id = head[0],
                Driver = "d-" + head[0],
                DependsOn = head.Length > 1 ? [.. head[1].Split(',')] : [],
                DeclaredDependsOn = true,
            };
            foreach (var flag in parts.Skip(1))
            {
                if (flag == "allow")
                {
                    spec.AllowFailure = true;
                }
                else if (flag[0] == 'r')
                {
                    spec.Retry = new RetryPolicy { MaxAttempts = int.Parse(flag[1..], CultureInfo.InvariantCulture), InitialDelay = TimeSpan.FromSeconds(1), MaxDelay = TimeSpan.FromMinutes(1), Multiplier = 2, Jitter = 0 };
                }
                else if (flag[0] == 't')
                {
                    spec.Timeout = TimeSpan.FromMilliseconds(int.Parse(flag[1..], CultureInfo.InvariantCulture));
                }
                else if (flag[0] == '@')
                {
                    spec.Driver = flag[1..];
                }
                else if (flag == "finally")
                {
                    spec.Finally = true;
                }
                else if (flag == "approval")
                {
                    spec.Kind = StepKind.Approval;
                    spec.Driver = "";
                    spec.Approvers = "operator";
                }
                else if (flag.StartsWith("child=", StringComparison.Ordinal))
                {
                    spec.Kind = StepKind.Pipeline;
                    spec.Driver = "";
                    spec.Pipeline = flag["child=".Length..];
                }
                else
                {
                    throw new ArgumentException($"unknown flag {flag} in {token}");
                }
            }

            specs.Add(spec);
        }

        return new PipelineSpec { Name = "p", ResourceType = "app", Revision = 1, Steps = specs, FailurePolicy = policy, Timeout = timeout, Concurrency = concurrency };
    }

    /// <summary>Applies an input at <paramref name="ms"/>, carries out the feedback the grain would, and returns the decision's strings.</summary>
    public List<string> Do(RunInput input, long ms)
    {
        var decision = Machine.Apply(input, At(ms));
        Last = decision;
        Reports.AddRange(decision.Reports);
        var lines = new List<string>();
        foreach (var effect in decision.BeforeWrite)
        {
            lines.Add("before " + Format(effect));
        }

        if (decision.Persist)
        {
            lines.Add("persist");
        }

        Follow(decision.Effects, ms, lines);
        Transcript.Add($"{ms} {input.GetType().Name}: {string.Join(", ", lines)}");
        return lines;
    }

    private void Follow(IReadOnlyList<RunEffect> effects, long ms, List<string> lines)
    {
        var dispatched = new List<DispatchReport>();
        foreach (var effect in effects)
        {
            lines.Add(Format(effect));
            switch (effect)
            {
                case SyncIndex:
                    Machine.Apply(new IndexSynced(Run.Status), At(ms));
                    break;
                case PublishEvents:
                    PublishedEvents.AddRange(Run.Outbox.Select(e => e.Id));
                    PublishedBatches.AddRange(Run.EventOutbox);
                    Machine.Apply(new EventsPublished(Run.Outbox.Count, Run.EventOutbox.Count), At(ms));
                    break;
                case DispatchStep d:
                    dispatched.Add(OversizeDrivers.TryGetValue(d.Driver, out var error)
                        ? new DispatchReport(d.Step, d.Attempt, null, At(ms), error)
                        : new DispatchReport(d.Step, d.Attempt, MissingDrivers.Contains(d.Driver) ? null : ++_sequence, At(ms)));
                    break;
            }
        }

        if (dispatched.Count > 0)
        {
            var settled = Machine.Apply(new DispatchesSettled(dispatched), At(ms));
            if (settled.Persist)
            {
                // Only a dispatch that can never go out makes its settlement a transition of its own.
                lines.Add("persist");
            }

            Follow(settled.Effects, ms, lines);
        }
    }

    private static string Format(RunEffect effect) => effect switch
    {
        StartChild c => $"start-child {c.Step}",
        CheckChild c => $"check-child {c.Child.Step}",
        CancelChild c => $"cancel-child {c.ChildRunId}",
        NotifyParent n => $"notify-parent {n.Ended.Step}={n.Ended.Status}",
        SyncIndex => "index",
        PublishEvents => "events",
        SendCancel c => $"cancel {c.Message.Step}#{c.Message.Attempt}",
        DispatchStep d => $"dispatch {d.Step}#{d.Attempt}",
        AcquireSlot a => $"acquire {a.Queue}",
        ReleaseSlot r => $"release {r.Queue}",
        CheckCommit c => $"check-commit {c.ResourceKey}",
        RegisterKeepAlive => "register-keepalive",
        StopKeepAlive => "stop-keepalive",
        ArmTimer { At: null } => "arm none",
        ArmTimer { At: { } at } => $"arm @{(long)(at - Epoch).TotalMilliseconds}",
        _ => throw new ArgumentOutOfRangeException(nameof(effect), effect, "unknown effect"),
    };

    public List<string> Start(long ms = 0) => Do(new StartRun(null), ms);

    public List<string> Approve(string step, long ms, bool approved = true, string? by = "k1", string? comment = null) =>
        Do(new ApproveStep(step, approved, by, comment), ms);

    public List<string> Pause(long ms, string? by = "k1") => Do(new PauseRun(by), ms);

    public List<string> Resume(long ms, string? by = "k1") => Do(new ResumeRun(by), ms);

    public List<string> ChildEnded(string step, long ms, RunStatus status = RunStatus.Succeeded, string? outputs = null, Guid? child = null) =>
        Do(new ChildEnded(step, child ?? Machine.Step(step).ChildRunId!.Value, status, status == RunStatus.Succeeded ? "" : "child failed", outputs), ms);

    public List<string> KeepAlive(long ms) => Do(KeepAliveTick.Instance, ms);

    public List<string> Tick(long ms) => Do(TickInput.Instance, ms);

    /// <summary>A driver result for <paramref name="step"/> (its current attempt unless given); without a step id when <paramref name="original"/>.</summary>
    public List<string> Result(string step, long ms, bool success = true, string? data = null, int? attempt = null, bool original = false, string? driver = null, string? message = null)
    {
        var spec = Run.FindSpec(step);
        var result = new DriverResultInput
        {
            Driver = driver ?? spec?.Driver ?? "d-" + step,
            StepId = original ? null : step,
            Attempt = original ? null : attempt ?? Machine.Step(step).Current?.Number,
            Success = success,
            Message = message ?? (success ? $"{step} ok" : $"{step} failed"),
            Data = data,
        };
        return Do(new ApplyResults([result]), ms);
    }

    /// <summary>A heartbeat of the driver working on <paramref name="step"/>'s current attempt (or the one given).</summary>
    public List<string> Heartbeat(string step, long ms, int? attempt = null, TimeSpan? interval = null) =>
        Do(new Heartbeat(step, attempt ?? Machine.Step(step).Current!.Number, interval), ms);

    /// <summary>What became of the last result.</summary>
    public ApplyOutcome Outcome => Assert.Single(Last!.Outcomes!);

    public StepStatus Status(string step) => Machine.Step(step).Status;

    /// <summary><c>id=Status</c> for every step, in declaration order.</summary>
    public string Statuses() => string.Join(" ", Run.Steps.Select(s => $"{s.Id}={s.Status}"));

    /// <summary>A new machine over the same state, as after a reload (the derived structures are rebuilt).</summary>
    public void Reload() => Machine = new RunStateMachine(Run, Options);

    /// <summary>The dispatch's stream sequence of a step's current attempt.</summary>
    public ulong Sequence(string step) => Machine.Step(step).Current!.Sequence;

    /// <summary>Runs a small script: <c>ok a</c>, <c>fail a</c>, <c>tick 5000</c>, one action per entry, 1 s apart unless a tick names its time.</summary>
    public void Script(params string[] actions)
    {
        long ms = 0;
        foreach (var action in actions)
        {
            var parts = action.Split(' ');
            ms += 1000;
            switch (parts[0])
            {
                case "ok":
                    Result(parts[1], ms, data: $$"""{"from":"{{parts[1]}}"}""");
                    break;
                case "fail":
                    Result(parts[1], ms, success: false);
                    break;
                case "tick":
                    ms = long.Parse(parts[1], CultureInfo.InvariantCulture);
                    Tick(ms);
                    break;
                default:
                    throw new ArgumentException($"unknown action {action}");
            }
        }
    }

    /// <summary>The last decision's refusal.</summary>
    public string? Refusal => Last?.Refusal;

    /// <summary>Every transition published or waiting in the run events outbox, as <c>step:Previous>Status</c> (<c>run:…</c> for the run), in order.</summary>
    public List<string> Transitions() =>
        PublishedBatches.Concat(Run.EventOutbox).SelectMany(b => b.Items).Select(t => $"{t.Step ?? "run"}:{t.Previous}>{t.Status}").ToList();

    /// <summary>A queue for runs of pipeline <c>p</c> in namespace <c>default</c> with the given limits.</summary>
    public static RunMachineOptions WithFlow(int? namespaceLimit = null) => new()
    {
        EmitEvents = false,
        EmitRunEvents = false,
        Flow = new FlowControlOptions { DefaultNamespaceLimit = namespaceLimit },
    };
}

internal static class PipelineSpecs
{
    /// <summary>Changes one step of a compact pipeline (conditions, matrices, timeouts the compact form has no flag for).</summary>
    public static PipelineSpec With(this PipelineSpec pipeline, string step, Action<StepSpec> change)
    {
        change(pipeline.Steps.Single(s => s.Id == step));
        return pipeline;
    }
}
