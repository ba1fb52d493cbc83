using Orleans.Concurrency;

namespace Conveyor.Grains.Flow;

/// <summary>A run asking for a slot.</summary>
[GenerateSerializer]
[Alias("conveyor.AdmissionRequest")]
internal sealed class AdmissionRequest
{
    /// <summary>The run.</summary>
    [Id(0)] public Guid RunId { get; set; }

    /// <summary>Its pipeline.</summary>
    [Id(1)] public string Pipeline { get; set; } = "";

    /// <summary>Priority 1–5, higher first.</summary>
    [Id(2)] public int Priority { get; set; }

    /// <summary>Its concurrency group value, or null when the pipeline has no groups.</summary>
    [Id(3)] public string? Group { get; set; }

    /// <summary>Whether the run cancels older runs of its group.</summary>
    [Id(4)] public bool CancelInProgress { get; set; }

    /// <summary>The pipeline's limit (from the run's snapshot), or null.</summary>
    [Id(5)] public int? PipelineLimit { get; set; }

    /// <summary>The namespace's limit, or null (only meaningful for a namespace-wide queue).</summary>
    [Id(6)] public int? NamespaceLimit { get; set; }
}

/// <summary>The answer to <see cref="IAdmissionGrain.AcquireAsync"/>.</summary>
[GenerateSerializer]
[Alias("conveyor.AdmissionTicket")]
internal sealed class AdmissionTicket
{
    /// <summary>The run holds a slot and may start.</summary>
    [Id(0)] public bool Admitted { get; set; }

    /// <summary>1-based position in the queue while not admitted.</summary>
    [Id(1)] public int Position { get; set; }

    /// <summary>A newer run of the group cancelled this one: it must end.</summary>
    [Id(2)] public bool Superseded { get; set; }

    /// <summary>The run that superseded this one.</summary>
    [Id(3)] public Guid? SupersededBy { get; set; }
}

/// <summary>A queued run as a queue snapshot shows it.</summary>
[GenerateSerializer]
[Alias("conveyor.QueuedRun")]
internal sealed class QueuedRun
{
    /// <summary>The run.</summary>
    [Id(0)] public Guid RunId { get; set; }

    /// <summary>Its pipeline.</summary>
    [Id(1)] public string Pipeline { get; set; } = "";

    /// <summary>Priority.</summary>
    [Id(2)] public int Priority { get; set; }

    /// <summary>Concurrency group, if any.</summary>
    [Id(3)] public string? Group { get; set; }

    /// <summary>Arrival order in this queue (FIFO within a priority).</summary>
    [Id(4)] public long Sequence { get; set; }

    /// <summary>When it was queued.</summary>
    [Id(5)] public DateTimeOffset QueuedAt { get; set; }

    /// <summary>The pipeline's limit from the run's snapshot.</summary>
    [Id(6)] public int? PipelineLimit { get; set; }

    /// <summary>Whether a newer run of the group cancels older ones.</summary>
    [Id(7)] public bool CancelInProgress { get; set; }
}

/// <summary>What a queue holds now: for operators, the API and queue-depth metrics.</summary>
[GenerateSerializer]
[Alias("conveyor.AdmissionSnapshot")]
internal sealed class AdmissionSnapshot
{
    /// <summary>Runs holding a slot, with their pipeline.</summary>
    [Id(0)] public List<QueuedRun> Active { get; set; } = [];

    /// <summary>Waiting runs in admission order (the first is admitted next when its limits allow).</summary>
    [Id(1)] public List<QueuedRun> Queued { get; set; } = [];

    /// <summary>The namespace limit the queue applies, or null.</summary>
    [Id(2)] public int? NamespaceLimit { get; set; }
}

/// <summary>
/// Admission control for runs: one activation per queue in the whole cluster, so limits hold across silos. Key: a
/// namespace (<c>{ns}</c>, when the namespace has a limit: every run of the namespace queues here) or a pipeline
/// (<c>{ns}/{pipeline}</c>). It never waits on a run grain — it tells runs to start or stop with one-way calls —
/// so a run may call it from inside its own turn.
/// </summary>
[Alias("conveyor.IAdmissionGrain")]
internal interface IAdmissionGrain : IGrainWithStringKey
{
    /// <summary>
    /// Admits the run now or queues it (priority, then arrival); idempotent per run. With cancel-in-progress, older
    /// runs of its group are told to cancel.
    /// </summary>
    Task<AdmissionTicket> AcquireAsync(AdmissionRequest request);

    /// <summary>Frees the run's slot or removes it from the queue, then admits whatever now fits; idempotent.</summary>
    Task ReleaseAsync(Guid runId);

    /// <summary>The run's 1-based queue position, or null when it is not queued here.</summary>
    [ReadOnly]
    [AlwaysInterleave]
    Task<int?> GetPositionAsync(Guid runId);

    /// <summary>The queue's content (queue depth = <see cref="AdmissionSnapshot.Queued"/>.Count).</summary>
    [ReadOnly]
    [AlwaysInterleave]
    Task<AdmissionSnapshot> GetSnapshotAsync();

    /// <summary>
    /// Frees the slots of runs that ended or vanished without releasing them and re-sends lost admissions; runs on a
    /// reminder every <see cref="FlowControlOptions.VerifyPeriod"/> while the queue holds anything.
    /// </summary>
    Task VerifyAsync();
}
