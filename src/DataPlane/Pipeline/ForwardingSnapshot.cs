using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Policy;
using FastPath.DataPlane.Routing;
using FastPath.DataPlane.Services;

namespace FastPath.DataPlane.Pipeline;

/// <summary>What kind of attachment a port is.</summary>
public enum PortKind : byte { Uplink, Host, Pod }

/// <summary>One port of the node: a pod's interface, the uplink or the host stack.</summary>
/// <param name="Name">Contract name: "uplink", "host" or "namespace/pod".</param>
/// <param name="Mac">The attached device's MAC, or <see cref="MacAddress.Zero"/> when it is learned from its frames.</param>
/// <param name="Addresses">The addresses that live behind this port (a pod's IPs, the node's IPs for host).</param>
public sealed record PortDefinition(string Name, PortKind Kind, MacAddress Mac, IReadOnlyList<IpAddr> Addresses);

/// <summary>Node-level forwarding settings (the data-plane view of FastPathConfiguration and the Node object).</summary>
public sealed record NodeSettings
{
    public required string NodeName { get; init; }
    /// <summary>The MAC pods send to; the engine answers ARP/ND with it and uses it as source towards pods.</summary>
    public MacAddress GatewayMac { get; init; } = new(0xEEEE_EEEE_EEEEUL);
    /// <summary>The node's uplink NIC MAC (Node annotation fastpath.io/mac).</summary>
    public MacAddress UplinkMac { get; init; }
    public int Mtu { get; init; } = 1500;
    /// <summary>The node's own addresses (InternalIPs): traffic to them goes to the host port.</summary>
    public IReadOnlyList<IpAddr> HostAddresses { get; init; } = [];
    /// <summary>How pod traffic for other nodes leaves: VXLAN (Flannel-compatible) or routed on a shared L2.</summary>
    public TunnelMode Tunnel { get; init; } = TunnelMode.Vxlan;
    /// <summary>VXLAN UDP port: 8472 is Flannel's and the Linux kernel's default, 4789 the IANA one (RFC 7348).</summary>
    public ushort VxlanPort { get; init; } = 8472;
    public uint Vni { get; init; } = 1;
    /// <summary>Connection tracking entries per worker (FastPathConfiguration conntrackMaxEntries).</summary>
    public int ConntrackCapacity { get; init; } = 65536;
}

/// <summary>Cross-node transport for pod traffic.</summary>
public enum TunnelMode : byte { Vxlan, Direct }

/// <summary>
/// An immutable, compiled view of everything the packet path needs. The control plane builds a new one for every
/// change and publishes it with one reference swap (<see cref="SnapshotHolder"/>); a batch reads the reference once,
/// so it sees either the old or the new snapshot, never a mix.
/// </summary>
public sealed class ForwardingSnapshot
{
    public ForwardingSnapshot(NodeSettings node, IReadOnlyList<PortDefinition> pods, long generation = 0, RouteTable? routes = null,
        ServiceTable? services = null, PolicyTable? policy = null)
    {
        Node = node;
        Routes = routes ?? RouteTable.Empty;
        Services = services ?? ServiceTable.Empty;
        Policy = policy ?? PolicyTable.Empty;
        if (!Policy.IsEmpty && Policy.PortCount != PortIndex.FirstPod + pods.Count)
            throw new ArgumentException($"policy table has {Policy.PortCount} ports, the snapshot {PortIndex.FirstPod + pods.Count}", nameof(policy));
        UnderlayV4 = node.HostAddresses.FirstOrDefault(a => a.IsV4, default).V4;
        MasqueradeV6 = node.HostAddresses.FirstOrDefault(a => !a.IsV4, default);
        NeedsConntrack = Services.Count > 0 || Routes.AnyMasquerade || !Policy.IsEmpty;
        Generation = generation;
        var hostAddresses = new List<IpAddr>();
        var ports = new PortDefinition[PortIndex.FirstPod + pods.Count];
        ports[PortIndex.Uplink] = new PortDefinition("uplink", PortKind.Uplink, node.UplinkMac, []);
        ports[PortIndex.Host] = new PortDefinition("host", PortKind.Host, node.UplinkMac, node.HostAddresses);
        for (int i = 0; i < pods.Count; i++) ports[PortIndex.FirstPod + i] = pods[i];
        Ports = ports;

        var local = new List<(IpAddr, int)>();
        for (int p = 0; p < ports.Length; p++)
            foreach (var a in ports[p].Addresses) local.Add((a, p));
        LocalAddresses = new AddressTable(local);
        var podMacs = new List<(MacAddress, int)>();
        for (int p = PortIndex.FirstPod; p < ports.Length; p++)
            if (ports[p].Mac != MacAddress.Zero) podMacs.Add((ports[p].Mac, p));
        PodMacs = AddressTable.ForMacs(podMacs);

        // Linux sources ICMP errors from the outgoing interface's address; the node's first address of the family
        // plays that part. Without one, 169.254.1.1 (Calico's pod gateway address) and fe80::1.
        IcmpSourceV4 = node.HostAddresses.FirstOrDefault(a => a.IsV4, IpAddr.FromV4(0xA9FE_0101)).V4;
        IcmpSourceV6 = node.HostAddresses.FirstOrDefault(a => !a.IsV4, new IpAddr(new UInt128(0xFE80_0000_0000_0000UL, 1)));

        PortMacs = new ulong[ports.Length];
        for (int p = 0; p < ports.Length; p++) PortMacs[p] = ports[p].Mac.Value;
    }

    public NodeSettings Node { get; }
    public long Generation { get; }
    public IReadOnlyList<PortDefinition> Ports { get; }
    public int PortCount => Ports.Count;

    /// <summary>Routes for everything that is not a local address: other nodes' pods, off-cluster, unreachable ranges.</summary>
    public RouteTable Routes { get; }

    /// <summary>Service frontends and their backends.</summary>
    public ServiceTable Services { get; }

    /// <summary>Compiled NetworkPolicies: the rule sets isolating local pods, per port and direction.</summary>
    public PolicyTable Policy { get; }

    /// <summary>This node's IPv4 underlay address (its first IPv4 InternalIP), the VXLAN tunnel endpoint; 0 if none.</summary>
    public uint UnderlayV4 { get; }

    /// <summary>The node's IPv6 address pod traffic is masqueraded to (default when the node has none: no IPv6 SNAT).</summary>
    public IpAddr MasqueradeV6 { get; }

    /// <summary>Connection tracking is needed: masquerade routes, Services or isolated pods.</summary>
    public bool NeedsConntrack { get; }

    /// <summary>Pod and node addresses → the port they live behind.</summary>
    public AddressTable LocalAddresses { get; }

    /// <summary>Configured pod MACs → pod port, for frames that carry no routable source address.</summary>
    public AddressTable PodMacs { get; }

    /// <summary>Source address of ICMPv4 errors the node sends.</summary>
    public uint IcmpSourceV4 { get; }
    /// <summary>Source address of ICMPv6 errors the node sends.</summary>
    public IpAddr IcmpSourceV6 { get; }

    /// <summary>Configured MAC per port (0 = learn), flat for the packet path.</summary>
    internal ulong[] PortMacs { get; }

    /// <summary>Port index by contract name, or -1 (control path only).</summary>
    public int FindPort(string name)
    {
        for (int p = 0; p < Ports.Count; p++)
            if (string.Equals(Ports[p].Name, name, StringComparison.Ordinal)) return p;
        return -1;
    }
}

/// <summary>Holds the current snapshot; readers take it with one volatile read and never lock.</summary>
public sealed class SnapshotHolder(ForwardingSnapshot initial)
{
    private ForwardingSnapshot _current = initial;

    public ForwardingSnapshot Current => Volatile.Read(ref _current);

    public void Publish(ForwardingSnapshot next) => Volatile.Write(ref _current, next);
}
