using FastPath.ControlPlane.Cluster;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Routing;
using FastPath.DataPlane.Services;
using k8s.Models;

namespace FastPath.ControlPlane.Compile;

/// <summary>The outcome of compiling: a snapshot, or the errors that prevented one.</summary>
public sealed record CompileResult(ForwardingSnapshot? Snapshot, IReadOnlyList<ClusterError> Errors)
{
    public bool Succeeded => Snapshot is not null;
}

/// <summary>
/// Turns the cluster objects into one node's <see cref="ForwardingSnapshot"/>: its pod ports and node settings.
/// Pure and deterministic (same state, same node → same ports in the same order), so a replay is reproducible.
/// Assumes a validated state; objects that still carry bad values are skipped rather than thrown on.
/// </summary>
public static class SnapshotCompiler
{
    public static CompileResult Compile(ClusterState state, string nodeName, long generation) =>
        Compile(state, nodeName, generation, new RouteTable.Builder());

    /// <summary>
    /// Compiles with a <paramref name="routes"/> builder kept from the previous compilation, so only the routes
    /// that changed (one Node's podCIDRs, say) are rewritten in the LPM tables.
    /// </summary>
    public static CompileResult Compile(ClusterState state, string nodeName, long generation, RouteTable.Builder routes)
    {
        var compiler = new IncrementalCompiler(nodeName, routes);
        foreach (var o in state.Objects()) compiler.Upsert(o);
        return compiler.Compile(generation, state.Source);
    }

    /// <summary>The data plane's view of this node's Node object and the configuration.</summary>
    public static NodeSettings Settings(ClusterObject<V1Node> node, FastPathConfiguration config) => new()
    {
        NodeName = node.Name,
        GatewayMac = config.GatewayMac,
        UplinkMac = AnnotatedMac(node.Value.Metadata),
        Mtu = config.Mtu,
        HostAddresses = HostAddresses(node.Value),
        Tunnel = config.Tunnel == Cluster.TunnelMode.Direct ? DataPlane.Pipeline.TunnelMode.Direct : DataPlane.Pipeline.TunnelMode.Vxlan,
        VxlanPort = (ushort)config.VxlanPort,
        Vni = (uint)config.Vni,
        ConntrackCapacity = config.ConntrackMaxEntries,
    };

    /// <summary>
    /// The pod's port when it runs on <paramref name="nodeName"/> in its own network namespace with an IP, else null:
    /// hostNetwork pods share the host port; pods without an IP have no sandbox network yet and receive nothing.
    /// Ports are ordered by "namespace/name" (ordinal) so port numbers do not depend on file order.
    /// </summary>
    /// <summary>Every port <see cref="PodPort"/> gives for <paramref name="state"/>'s pods, ordered by name.</summary>
    public static List<PortDefinition> PodPorts(ClusterState state, string nodeName)
    {
        var ports = new List<PortDefinition>();
        foreach (var pod in state.Pods)
            if (PodPort(pod, nodeName) is { } port) ports.Add(port);
        ports.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return ports;
    }

    public static PortDefinition? PodPort(ClusterObject<V1Pod> pod, string nodeName) => PodPort(PodRecord.From(pod), nodeName);

    public static PortDefinition? PodPort(PodRecord pod, string nodeName)
    {
        if (!string.Equals(pod.NodeName, nodeName, StringComparison.Ordinal)) return null;
        if (pod.HostNetwork || pod.Addresses.Length == 0) return null;
        return new PortDefinition(pod.QualifiedName, PortKind.Pod, pod.Mac, pod.Addresses);
    }

    /// <summary>status.podIPs (one per family, podIPs[0] == podIP), falling back to the older single status.podIP.</summary>
    internal static IpAddr[] PodAddresses(V1Pod pod)
    {
        if (pod.Status?.PodIPs is { Count: > 0 } podIps)
        {
            if (podIps.Count == 1) return IpAddr.TryParse(podIps[0]?.Ip, out var only) ? [only] : [];
            var addresses = new List<IpAddr>(podIps.Count);
            foreach (var p in podIps)
                if (IpAddr.TryParse(p?.Ip, out var ip) && !addresses.Contains(ip)) addresses.Add(ip);
            return [.. addresses];
        }
        return IpAddr.TryParse(pod.Status?.PodIP, out var single) ? [single] : [];
    }

    /// <summary>The node's own addresses: InternalIPs first (what kubelet and peers use), then ExternalIPs.</summary>
    internal static List<IpAddr> HostAddresses(V1Node node)
    {
        var addresses = new List<IpAddr>();
        foreach (string type in (string[])["InternalIP", "ExternalIP"])
            foreach (var a in node.Status?.Addresses ?? [])
                if (a.Type == type && IpAddr.TryParse(a.Address, out var ip) && !addresses.Contains(ip)) addresses.Add(ip);
        return addresses;
    }

    internal static MacAddress AnnotatedMac(V1ObjectMeta? metadata) =>
        metadata?.Annotations is { } a && a.TryGetValue(FastPathAnnotations.Mac, out var text) && MacAddress.TryParse(text, out var mac)
            ? mac
            : MacAddress.Zero;
}
