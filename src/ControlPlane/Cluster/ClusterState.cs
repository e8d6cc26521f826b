using System.Collections.Immutable;
using k8s.Models;

namespace FastPath.ControlPlane.Cluster;

/// <summary>
/// Everything read from a cluster directory: the typed objects (each remembering its file) and the effective
/// <see cref="FastPathConfiguration"/> (defaults applied, clusterCIDRs defaulted to the nodes' podCIDRs).
/// Lists keep file order (files sorted by path, documents in file order), so compiling is deterministic.
/// </summary>
public sealed record ClusterState
{
    /// <summary>The path the objects were loaded from (a directory or one file), as the user gave it.</summary>
    public required string Source { get; init; }
    public ImmutableArray<ClusterObject<V1Node>> Nodes { get; init; } = [];
    public ImmutableArray<ClusterObject<V1Pod>> Pods { get; init; } = [];
    public ImmutableArray<ClusterObject<V1Service>> Services { get; init; } = [];
    public ImmutableArray<ClusterObject<V1EndpointSlice>> EndpointSlices { get; init; } = [];
    public ImmutableArray<ClusterObject<V1Namespace>> Namespaces { get; init; } = [];
    public ImmutableArray<ClusterObject<V1NetworkPolicy>> NetworkPolicies { get; init; } = [];
    public FastPathConfiguration Configuration { get; init; } = FastPathConfiguration.Default;
    /// <summary>The file the FastPathConfiguration came from, or null when the defaults apply.</summary>
    public string? ConfigurationFile { get; init; }

    /// <summary>Every object, the configuration in force first (as a FastPathConfiguration object), for feeding a live compiler.</summary>
    public IEnumerable<IClusterObject> Objects()
    {
        yield return new ClusterObject<FastPathConfiguration>(Configuration, FastPathConfiguration.KindName, null, "", ConfigurationFile ?? Source, 1);
        foreach (var o in Namespaces) yield return o;
        foreach (var o in Nodes) yield return o;
        foreach (var o in Pods) yield return o;
        foreach (var o in Services) yield return o;
        foreach (var o in EndpointSlices) yield return o;
        foreach (var o in NetworkPolicies) yield return o;
    }

    public ClusterObject<V1Node>? FindNode(string name)
    {
        foreach (var n in Nodes)
            if (string.Equals(n.Name, name, StringComparison.Ordinal)) return n;
        return null;
    }
}

/// <summary>The outcome of loading a cluster: the state (whatever could be read) plus every error and warning.</summary>
/// <remarks>Errors make the state unfit to publish; warnings (skipped kinds, ignored unknown fields) do not.</remarks>
public sealed record ClusterLoadResult(ClusterState State, ImmutableArray<ClusterError> Errors, ImmutableArray<ClusterError> Warnings)
{
    public bool IsValid => Errors.IsEmpty;
}

/// <summary>What one manifest file holds: the objects read without error, and the problems found in it.</summary>
public sealed record ManifestFile(string Path, IReadOnlyList<IClusterObject> Objects, IReadOnlyList<ClusterError> Errors, IReadOnlyList<ClusterError> Warnings);
