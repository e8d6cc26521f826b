using FastPath.ControlPlane.Cluster;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Routing;

namespace FastPath.ControlPlane.Compile;

/// <summary>
/// The node's routing table, in the shape Flannel and kube-proxy leave on a Linux node:
/// <list type="bullet">
/// <item>every other node's podCIDRs → that node (VXLAN to its InternalIP, or its MAC with tunnel: direct);</item>
/// <item>every other node's own addresses → the uplink, straight to that node's MAC (shared L2), not masqueraded;</item>
/// <item>this node's podCIDRs → unreachable (host) for addresses no local pod holds (local pods match exactly first);</item>
/// <item>cluster and service CIDRs → unreachable (net): nothing outside a node's podCIDR or a Service lives there;</item>
/// <item>default routes → the uplink gateway (uplinkGatewayMAC, or uplinkGateway's address resolved by ARP / ND, or the
/// host's default route under <c>run</c>), masqueraded when masqueradeOffCluster is on.</item>
/// </list>
/// Longest prefix wins, so a node's /24 inside the cluster /16 takes precedence over the unreachable /16.
/// </summary>
public static class RouteCompiler
{
    /// <summary>The routes no Node contributes: cluster and service CIDRs, the default routes.</summary>
    /// <param name="hostGateways">The host's default gateways (<c>run</c> reads them from the kernel), used only when the
    /// configuration names neither uplinkGateway nor uplinkGatewayMAC.</param>
    public static List<Route> GlobalRoutes(FastPathConfiguration config, IReadOnlyList<IpAddr>? hostGateways = null)
    {
        var routes = new List<Route>();
        foreach (var cidr in config.ClusterCidrs)
            routes.Add(new Route(cidr.Network, cidr.Length, Unreachable(IcmpHeader.CodeNetUnreachable)));
        foreach (var cidr in config.ServiceCidrs)
            routes.Add(new Route(cidr.Network, cidr.Length, Unreachable(IcmpHeader.CodeNetUnreachable)));

        IReadOnlyList<IpAddr> gateways = config.UplinkGateways.IsEmpty && config.UplinkGatewayMac is null ? hostGateways ?? [] : config.UplinkGateways;
        foreach (var v4 in (ReadOnlySpan<bool>)[true, false])
        {
            var any = v4 ? IpAddr.FromV4(0) : new IpAddr(UInt128.Zero);
            NextHop hop;
            if (gateways.FirstOrDefault(g => g.IsV4 == v4) is var address && address != default)
                hop = config.UplinkGatewayMac is { } known
                    ? new NextHop(NextHopKind.Uplink, address, known, Masquerade: config.MasqueradeOffCluster)
                    : new NextHop(NextHopKind.Uplink, address, MacAddress.Zero, Masquerade: config.MasqueradeOffCluster, Resolve: true);
            // A MAC alone serves both families, as before gateways could be named by address.
            else if (config.UplinkGatewayMac is { } mac && config.UplinkGateways.IsEmpty)
                hop = new NextHop(NextHopKind.Uplink, default, mac, Masquerade: config.MasqueradeOffCluster);
            else continue;
            routes.Add(new Route(any, 0, hop));
        }
        return routes;
    }

    /// <summary>The routes one Node contributes (its podCIDRs and addresses), as seen from <paramref name="nodeName"/>.</summary>
    public static List<Route> NodeRoutes(ClusterObject<k8s.Models.V1Node> node, string nodeName)
    {
        var routes = new List<Route>();
        var cidrs = PodCidrs(node.Value);
        if (node.Name == nodeName)
        {
            foreach (var cidr in cidrs) routes.Add(new Route(cidr.Network, cidr.Length, Unreachable(IcmpHeader.CodeHostUnreachable)));
            return routes;
        }
        var addresses = SnapshotCompiler.HostAddresses(node.Value);
        var mac = SnapshotCompiler.AnnotatedMac(node.Value.Metadata);
        // The VXLAN underlay is IPv4, for IPv6 pod CIDRs too (one tunnel carries both families).
        var underlay = addresses.FirstOrDefault(a => a.IsV4);
        var remote = new NextHop(NextHopKind.RemoteNode, underlay, mac);
        foreach (var cidr in cidrs) routes.Add(new Route(cidr.Network, cidr.Length, remote));
        // Not masqueraded: a peer node is in the cluster, and a backend's reply to a NodePort or LoadBalancer
        // connection that the peer SNATed to its own address must reach it unchanged for the peer to reverse it.
        foreach (var a in addresses)
            routes.Add(new Route(a, a.IsV4 ? 32 : 128, new NextHop(NextHopKind.Uplink, a, mac)));
        return routes;
    }

    private static NextHop Unreachable(byte code) => new(NextHopKind.Unreachable, default, MacAddress.Zero, code);

    private static List<Cidr> PodCidrs(k8s.Models.V1Node node)
    {
        var cidrs = new List<Cidr>();
        foreach (var text in node.Spec?.PodCIDRs ?? (node.Spec?.PodCIDR is { } single ? [single] : []))
            if (Cidr.TryParse(text, out var cidr) && !cidrs.Contains(cidr)) cidrs.Add(cidr);
        return cidrs;
    }
}
