namespace FastPath.ControlPlane.Cluster.Sources;

/// <summary>
/// Where cluster objects come from: their current set, then every change. The directory watcher is one; a
/// Kubernetes API watch (informers: list, then watch events) fits the same shape, so the controller and the compiler
/// never learn which one feeds them.
/// </summary>
public interface IClusterSource : IDisposable
{
    /// <summary>What is being read, for log lines ("directory /etc/fastpath/cluster").</summary>
    string Description { get; }

    /// <summary>
    /// Reads the current objects and returns them as one batch of upserts (with any problems found), then reports
    /// later changes to <paramref name="onChanges"/> from a thread of the source's own, one batch at a time, never
    /// concurrently. Call once.
    /// </summary>
    ClusterChangeBatch Start(Action<ClusterChangeBatch> onChanges);
}

public enum ClusterChangeKind : byte { Upsert, Delete }

/// <summary>One object added or modified (<see cref="Object"/> holds the new version), or deleted.</summary>
/// <param name="Origin">Where the change was read (a file), for log lines.</param>
public sealed record ClusterChange(ClusterChangeKind Kind, ObjectKey Key, IClusterObject? Object, string Origin)
{
    public static ClusterChange Upsert(IClusterObject o) => new(ClusterChangeKind.Upsert, o.Key, o, o.File);

    public static ClusterChange Delete(IClusterObject o) => new(ClusterChangeKind.Delete, o.Key, null, o.File);
}

/// <summary>
/// Changes a source saw together (a debounced burst of file events, one informer resync), with the problems met
/// while reading them: a file that does not parse yields an error here and no change for the objects it held.
/// </summary>
public sealed record ClusterChangeBatch(IReadOnlyList<ClusterChange> Changes, IReadOnlyList<ClusterError> Errors, IReadOnlyList<ClusterError> Warnings)
{
    public static ClusterChangeBatch Empty { get; } = new([], [], []);
}
