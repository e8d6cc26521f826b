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
        var node = state.FindNode(nodeName);
        if (node is null)
        {
            string known = state.Nodes.Length == 0 ? "no Nodes defined" : "Nodes: " + string.Join(", ", state.Nodes.Select(n => n.Name));
            return new CompileResult(null,
                [new ClusterError(null, null, null, $"--node {nodeName}", $"no Node named {nodeName} in {state.Source} ({known})")]);
        }

        var config = state.Configuration;
        var settings = new NodeSettings
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
        var table = routes.Apply(RouteCompiler.Routes(state, node.Name));
        var services = new ServiceTable(ServiceCompiler.Frontends(state, node.Name, settings.HostAddresses), config.MaglevTableSize);
        var pods = PodPorts(state, node.Name);
        var policy = PolicyCompiler.Compile(state, pods, settings.HostAddresses);
        return new CompileResult(new ForwardingSnapshot(settings, pods, generation, table, services, policy), []);
    }

    /// <summary>
    /// One port per pod running on this node with its own network namespace. hostNetwork pods share the host port;
    /// pods without an IP have no sandbox network yet and receive nothing. Ordered by "namespace/name" (ordinal) so
    /// port numbers do not depend on file order.
    /// </summary>
    public static List<PortDefinition> PodPorts(ClusterState state, string nodeName)
    {
        var ports = new List<PortDefinition>();
        foreach (var pod in state.Pods)
        {
            if (!string.Equals(pod.Value.Spec?.NodeName, nodeName, StringComparison.Ordinal)) continue;
            if (pod.Value.Spec?.HostNetwork == true) continue;
            var addresses = PodAddresses(pod.Value);
            if (addresses.Count == 0) continue;
            ports.Add(new PortDefinition(pod.QualifiedName, PortKind.Pod, AnnotatedMac(pod.Value.Metadata), addresses));
        }
        ports.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return ports;
    }

    /// <summary>status.podIPs (one per family, podIPs[0] == podIP), falling back to the older single status.podIP.</summary>
    internal static List<IpAddr> PodAddresses(V1Pod pod)
    {
        var addresses = new List<IpAddr>();
        if (pod.Status?.PodIPs is { Count: > 0 } podIps)
        {
            foreach (var p in podIps)
                if (IpAddr.TryParse(p?.Ip, out var ip) && !addresses.Contains(ip)) addresses.Add(ip);
        }
        else if (IpAddr.TryParse(pod.Status?.PodIP, out var ip))
        {
            addresses.Add(ip);
        }
        return addresses;
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
