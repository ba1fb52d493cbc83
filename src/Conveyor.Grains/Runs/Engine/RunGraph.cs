using System.Runtime.InteropServices;
using Conveyor.Grains.Abstractions;

namespace Conveyor.Grains.Runs.Engine;

/// <summary>
/// The shape of one run's DAG, fixed by its plan: each step's spec, its dependents and its place in declaration order.
/// Built once per load of the state (O(steps + edges)); it holds the state's own step objects, so it is never kept
/// across a replacement of the state.
/// </summary>
internal sealed class RunGraph
{
    private static readonly List<StepState> NoDependents = [];

    // A step's place in declaration order, shifted so that a matrix step's instances sort after it and before the next.
    private const int OrderShift = 16;

    private readonly Dictionary<string, StepSpec> _specs;
    private readonly Dictionary<string, StepState> _steps;
    private readonly Dictionary<string, List<StepState>> _dependents;
    private readonly Dictionary<StepState, int> _order;
    private readonly Dictionary<StepState, StepState> _parents = new(ReferenceEqualityComparer.Instance);
    private readonly List<StepState> _finallyRoots = [];

    public RunGraph(RunState run)
    {
        Run = run;
        _specs = run.Plan.Pipeline.Steps.ToDictionary(s => s.Id, StringComparer.Ordinal);
        _steps = new Dictionary<string, StepState>(run.Steps.Count, StringComparer.Ordinal);
        _order = new Dictionary<StepState, int>(run.Steps.Count, ReferenceEqualityComparer.Instance);
        _dependents = new Dictionary<string, List<StepState>>(StringComparer.Ordinal);
        foreach (var step in run.Steps)
        {
            _steps[step.Id] = step;
            _order[step] = _order.Count << OrderShift;
            AddInstances(step);
        }

        foreach (var step in run.Steps)
        {
            var spec = _specs[step.Id];
            foreach (var dep in spec.DependsOn)
            {
                (_dependents.TryGetValue(dep, out var list) ? list : _dependents[dep] = []).Add(step);
            }

            if (spec.Finally && spec.DependsOn.Count == 0)
            {
                _finallyRoots.Add(step);
            }
        }
    }

    /// <summary>The finally steps that depend on no other step: they start once every main step has ended.</summary>
    public IReadOnlyList<StepState> FinallyRoots => _finallyRoots;

    /// <summary>Whether the pipeline has finally steps.</summary>
    public bool HasFinally => _finallyRoots.Count > 0;

    /// <summary>Files a matrix step's instances (when it has them) as steps of their own, under its spec.</summary>
    public void AddInstances(StepState parent)
    {
        if (parent.Instances is not { } instances)
        {
            return;
        }

        var spec = _specs[parent.Id];
        for (var i = 0; i < instances.Count; i++)
        {
            var instance = instances[i];
            _steps[instance.Id] = instance;
            _specs[instance.Id] = spec;
            _parents[instance] = parent;
            _order[instance] = _order[parent] + 1 + i;
        }
    }

    /// <summary>The matrix step an instance belongs to; null for a step of the plan.</summary>
    public StepState? ParentOf(StepState step) => step.IsInstance ? _parents.GetValueOrDefault(step) : null;

    /// <summary>The state the graph was built from.</summary>
    public RunState Run { get; }

    /// <summary>A step's spec.</summary>
    public StepSpec Spec(StepState step) => _specs[step.Id];

    /// <summary>A step by id.</summary>
    public StepState Step(string id) => _steps[id];

    /// <summary>A step by id, if the plan has it.</summary>
    public StepState? FindStep(string id) => _steps.GetValueOrDefault(id);

    /// <summary>The steps that depend on <paramref name="step"/>.</summary>
    public List<StepState> DependentsOf(StepState step) => _dependents.GetValueOrDefault(step.Id) ?? NoDependents;

    /// <summary>A step's position in the pipeline's declaration order.</summary>
    public int OrderOf(StepState step) => _order[step];

    /// <summary>Whether any step of the run is served by <paramref name="driver"/>.</summary>
    public bool HasDriver(string driver)
    {
        foreach (var spec in _specs.Values)
        {
            if (string.Equals(spec.Driver, driver, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Kahn's algorithm over the plan; steps keep their declaration order among equals.</summary>
    public List<StepState> TopologicalOrder()
    {
        var waiting = new Dictionary<string, int>(Run.Steps.Count, StringComparer.Ordinal);
        var queue = new Queue<StepState>();
        foreach (var step in Run.Steps)
        {
            var deps = _specs[step.Id].DependsOn.Count;
            waiting[step.Id] = deps;
            if (deps == 0)
            {
                queue.Enqueue(step);
            }
        }

        var order = new List<StepState>(Run.Steps.Count);
        while (queue.TryDequeue(out var step))
        {
            order.Add(step);
            foreach (var next in DependentsOf(step))
            {
                if (--CollectionsMarshal.GetValueRefOrNullRef(waiting, next.Id) == 0)
                {
                    queue.Enqueue(next);
                }
            }
        }

        if (order.Count != Run.Steps.Count)
        {
            // Validation rejects cycles; a plan stored before that rule would otherwise hang here.
            throw new InvalidOperationException($"run {Run.RunId}: the pipeline's steps form a cycle");
        }

        return order;
    }
}
