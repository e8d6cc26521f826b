namespace FastPath.ControlPlane.Cluster;

/// <summary>
/// Identity of a cluster object: kind, namespace (null for cluster-scoped kinds) and name. A source reports changes
/// by key, so a later version of an object replaces its earlier one wherever it was read from.
/// </summary>
public readonly record struct ObjectKey(string Kind, string? Namespace, string Name)
{
    public override string ToString() => Namespace is null ? $"{Kind} {Name}" : $"{Kind} {Namespace}/{Name}";
}

/// <summary>Any <see cref="ClusterObject{T}"/>, for code that handles objects of every kind (sources, the live controller).</summary>
public interface IClusterObject : IObjectOrigin
{
    /// <summary>The typed object (a KubernetesClient model, or a <see cref="FastPathConfiguration"/>).</summary>
    object Value { get; }
}

/// <summary>A typed Kubernetes object together with where it was read from, so every error can name its file.</summary>
/// <param name="Value">The deserialized object; treat it as read-only once it is in a <see cref="ClusterState"/>.</param>
/// <param name="Kind">The object's kind as written ("Pod", "Node", ...).</param>
/// <param name="File">The file as the user can find it: the cluster path they gave joined with the relative path.</param>
/// <param name="Line">1-based line where the object's document starts.</param>
public sealed record ClusterObject<T>(T Value, string Kind, string? Namespace, string Name, string File, int Line)
    : IClusterObject where T : class
{
    public ObjectKey Key => new(Kind, Namespace, Name);

    object IClusterObject.Value => Value;

    /// <summary>"Pod default/web-1" or "Node node-a": how error lines name the object.</summary>
    public string Label => Namespace is null ? $"{Kind} {Name}" : $"{Kind} {Namespace}/{Name}";

    /// <summary>Port name of a pod ("namespace/name") and the key for duplicate detection.</summary>
    public string QualifiedName => Namespace is null ? Name : $"{Namespace}/{Name}";
}

/// <summary>Annotations FastPath reads from Kubernetes objects. The names are a fixed contract (external checks use them).</summary>
public static class FastPathAnnotations
{
    /// <summary>On a Node: the uplink NIC's MAC. On a Pod: the MAC of its interface (otherwise learned from its frames).</summary>
    public const string Mac = "fastpath.io/mac";
}
