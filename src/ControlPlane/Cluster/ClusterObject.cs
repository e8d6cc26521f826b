namespace FastPath.ControlPlane.Cluster;

/// <summary>A typed Kubernetes object together with where it was read from, so every error can name its file.</summary>
/// <param name="Value">The deserialized object; treat it as read-only once it is in a <see cref="ClusterState"/>.</param>
/// <param name="Kind">The object's kind as written ("Pod", "Node", ...).</param>
/// <param name="File">The file as the user can find it: the cluster path they gave joined with the relative path.</param>
/// <param name="Line">1-based line where the object's document starts.</param>
public sealed record ClusterObject<T>(T Value, string Kind, string? Namespace, string Name, string File, int Line)
    where T : class
{
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
