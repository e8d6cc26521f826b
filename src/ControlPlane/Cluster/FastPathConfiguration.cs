using System.Collections.Immutable;
using FastPath.DataPlane.Packets;

namespace FastPath.ControlPlane.Cluster;

/// <summary>How traffic to pods on other nodes leaves this node.</summary>
public enum TunnelMode
{
    /// <summary>VXLAN overlay (RFC 7348), Flannel-compatible: UDP 8472, VNI 1 by default.</summary>
    Vxlan,
    /// <summary>Plain routing: the underlay knows every node's podCIDR.</summary>
    Direct,
}

/// <summary>An inclusive port range such as kube-apiserver's --service-node-port-range "30000-32767".</summary>
public readonly record struct PortRange(int First, int Last)
{
    public bool Contains(int port) => port >= First && port <= Last;
    public override string ToString() => $"{First}-{Last}";
}

/// <summary>
/// Node-level settings Kubernetes objects do not carry (the FastPathConfiguration document, apiVersion
/// fastpath.io/v1alpha1), in the spirit of kube-proxy's KubeProxyConfiguration. Values are parsed and checked;
/// later stages (VXLAN, services, conntrack) read them from here and extend NodeSettings.
/// </summary>
public sealed record FastPathConfiguration
{
    public const string ApiVersion = "fastpath.io/v1alpha1";
    public const string KindName = "FastPathConfiguration";

    public static FastPathConfiguration Default { get; } = new();

    /// <summary>Pod address ranges. When the document leaves it out, the loader fills in the union of the nodes' podCIDRs.</summary>
    public ImmutableArray<Cidr> ClusterCidrs { get; init; } = [];
    /// <summary>ClusterIP ranges; 10.96.0.0/12 is kube-apiserver's --service-cluster-ip-range default.</summary>
    public ImmutableArray<Cidr> ServiceCidrs { get; init; } = [Parse("10.96.0.0/12")];
    public TunnelMode Tunnel { get; init; } = TunnelMode.Vxlan;
    /// <summary>8472 is the Linux kernel's and Flannel's VXLAN port (the IANA port 4789 is not the kernel default).</summary>
    public int VxlanPort { get; init; } = 8472;
    public int Vni { get; init; } = 1;
    /// <summary>MTU of the uplink.</summary>
    public int Mtu { get; init; } = 1500;
    public MacAddress GatewayMac { get; init; } = new(0xEEEE_EEEE_EEEEUL);
    /// <summary>
    /// The MAC of the uplink's default gateway (the underlay router). Without it the node has no default route:
    /// off-cluster destinations are unreachable (ICMP net unreachable), as on a node with no default gateway.
    /// </summary>
    public MacAddress? UplinkGatewayMac { get; init; }
    /// <summary>
    /// The uplink's default gateways by address (at most one IPv4 and one IPv6): the engine resolves their MACs by ARP
    /// and Neighbor Discovery. With <see cref="UplinkGatewayMac"/> too, that MAC is taken as the gateway's (no
    /// resolution). With neither, <c>fastpath run</c> takes the host's default routes.
    /// </summary>
    public ImmutableArray<IpAddr> UplinkGateways { get; init; } = [];
    public PortRange NodePortRange { get; init; } = new(30000, 32767);
    /// <summary>SNAT pod traffic leaving the cluster CIDRs to the node IP (kube-proxy's --cluster-cidr masquerade rule).</summary>
    public bool MasqueradeOffCluster { get; init; } = true;
    /// <summary>
    /// Largest Maglev lookup table M; must be prime (Maglev paper §3.4), 16381 is Cilium's default. A Service's table
    /// is sized from its backend count (<see cref="MaglevSlotsPerBackend"/>) up to this.
    /// </summary>
    public int MaglevTableSize { get; init; } = 16381;
    /// <summary>
    /// Slots per backend a Service's Maglev table gets (<c>MaglevTable.SizeFor</c>: the smallest of Cilium's sizes
    /// with ≥ this·N slots, at most <see cref="MaglevTableSize"/>); 0 gives every Service <see cref="MaglevTableSize"/>.
    /// 100 is the paper's M > 100·N: shares within ~1 %, and a 10-endpoint Service takes 2 KiB instead of 32 KiB.
    /// </summary>
    public int MaglevSlotsPerBackend { get; init; } = 100;
    /// <summary>Connection-tracking table capacity (kube-proxy's conntrack.min default is 131072 per node).</summary>
    public int ConntrackMaxEntries { get; init; } = 262144;
    /// <summary>kube-proxy's conntrack.tcpEstablishedTimeout default.</summary>
    public TimeSpan ConntrackTcpEstablishedTimeout { get; init; } = TimeSpan.FromHours(24);
    /// <summary>kube-proxy's conntrack.tcpCloseWaitTimeout default.</summary>
    public TimeSpan ConntrackTcpCloseWaitTimeout { get; init; } = TimeSpan.FromHours(1);
    /// <summary>Linux nf_conntrack_udp_timeout: a UDP flow seen in one direction only.</summary>
    public TimeSpan ConntrackUdpTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>Linux nf_conntrack_udp_timeout_stream: a UDP flow that has seen replies.</summary>
    public TimeSpan ConntrackUdpStreamTimeout { get; init; } = TimeSpan.FromSeconds(120);

    private static Cidr Parse(string text) => Cidr.TryParse(text, out var c) ? c : throw new ArgumentException(text);
}
