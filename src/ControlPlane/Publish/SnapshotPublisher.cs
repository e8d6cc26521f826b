using System.Diagnostics;
using FastPath.ControlPlane.Cluster;
using FastPath.ControlPlane.Compile;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Routing;

namespace FastPath.ControlPlane.Publish;

/// <summary>
/// Compiles cluster state for one node and swaps the result into the data plane's <see cref="SnapshotHolder"/>.
/// Never loses the last good state: invalid objects or a failed compile leave the current snapshot in place and
/// return the errors (STYLE.md: edges fail early, the packet path keeps forwarding).
/// </summary>
public sealed class SnapshotPublisher
{
    private readonly object _gate = new();
    private long _generation;
    // Kept so a change recompiles only the routes it touches; made on the first Publish(state): a publisher fed by the
    // live controller (whose compiler keeps its own builder) never needs one, and a builder holds the 64 MiB IPv4 table.
    private RouteTable.Builder? _routes;

    /// <summary>Starts with an empty snapshot (uplink and host ports only, generation 0) until the first publish.</summary>
    public SnapshotPublisher(string nodeName)
        : this(nodeName, new SnapshotHolder(new ForwardingSnapshot(new NodeSettings { NodeName = nodeName }, [], 0)))
    {
    }

    public SnapshotPublisher(string nodeName, SnapshotHolder holder)
    {
        NodeName = nodeName;
        Holder = holder;
        _generation = holder.Current.Generation;
    }

    public string NodeName { get; }

    /// <summary>Routes added, replaced or removed by the last successful publish.</summary>
    public int LastRouteChanges => _routes?.LastChanges ?? 0;

    /// <summary>How long each publish's compilation took (full or incremental).</summary>
    public LatencyHistogram CompileLatency { get; } = new();

    /// <summary>From a publish request to the swap (waiting for a concurrent publish, compiling, swapping).</summary>
    public LatencyHistogram PublishLatency { get; } = new();

    /// <summary>What the data plane reads; hand this to the pipeline.</summary>
    public SnapshotHolder Holder { get; }

    /// <summary>Loads nothing itself: refuses a load with errors, otherwise compiles and publishes.</summary>
    /// <returns>The errors that kept the previous snapshot; empty when a new snapshot was published.</returns>
    public IReadOnlyList<ClusterError> Publish(ClusterLoadResult load) =>
        load.IsValid ? Publish(load.State) : load.Errors;

    /// <summary>Compiles <paramref name="state"/> (assumed validated) and publishes it with the next generation.</summary>
    public IReadOnlyList<ClusterError> Publish(ClusterState state) =>
        Publish(generation => SnapshotCompiler.Compile(state, NodeName, generation, _routes ??= new RouteTable.Builder()));

    /// <summary>
    /// Publishes what <paramref name="compile"/> builds for the next generation (the live controller compiles
    /// incrementally); nothing is published when it fails.
    /// </summary>
    public IReadOnlyList<ClusterError> Publish(Func<long, CompileResult> compile)
    {
        // Serialized so generations increase in publish order even when a watcher and a manual reload race.
        long start = Stopwatch.GetTimestamp();
        lock (_gate)
        {
            long compileStart = Stopwatch.GetTimestamp();
            var result = compile(_generation + 1);
            CompileLatency.Record(Stopwatch.GetElapsedTime(compileStart));
            if (result.Snapshot is null) return result.Errors;
            _generation++;
            Holder.Publish(result.Snapshot);
            PublishLatency.Record(Stopwatch.GetElapsedTime(start));
            return [];
        }
    }

    /// <summary>Loads <paramref name="clusterPath"/> and publishes it: the one call a reload needs.</summary>
    public IReadOnlyList<ClusterError> Reload(string clusterPath) => Publish(ClusterDirectory.Load(clusterPath));
}
