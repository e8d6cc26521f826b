using FastPath.DataPlane.Packets;

namespace FastPath.DataPlane.Routing;

/// <summary>What the node does with a packet whose destination matched a route.</summary>
public enum NextHopKind : byte
{
    /// <summary>A pod CIDR of another node: VXLAN to its underlay address, or its MAC on a shared L2 (direct).</summary>
    RemoteNode,
    /// <summary>Off the cluster, through the uplink's gateway.</summary>
    Uplink,
    /// <summary>The node's own stack.</summary>
    Host,
    /// <summary>Known to be unreachable (an unused address of the node's pod CIDR, a cluster CIDR no node owns):
    /// dropped with an ICMP destination unreachable, as a Linux "unreachable" route does.</summary>
    Unreachable,
}

/// <summary>Where a route leads. <see cref="Underlay"/> and <see cref="Mac"/> are the remote node's (RemoteNode) or the gateway's (Uplink).</summary>
/// <param name="IcmpCode">For Unreachable: the ICMPv4 destination-unreachable code (0 net, 1 host).</param>
/// <param name="Masquerade">SNAT pod traffic to the node address on the way out (off-cluster destinations).</param>
public readonly record struct NextHop(NextHopKind Kind, IpAddr Underlay, MacAddress Mac, byte IcmpCode = 0, bool Masquerade = false);

/// <summary>One route as the control plane states it.</summary>
public readonly record struct Route(IpAddr Prefix, int Length, NextHop NextHop);

/// <summary>
/// The node's routes: IPv4 and IPv6 longest-prefix-match tables (DIR-24-8 / stride trie) whose results index one
/// array of next hops. Built off the packet path and immutable afterwards.
/// </summary>
public sealed class RouteTable
{
    private readonly LpmTable4 _v4;
    private readonly LpmTable6 _v6;

    public RouteTable(IReadOnlyList<Route> routes)
    {
        var hops = new List<NextHop>();
        var v4 = new List<(uint, int, int)>();
        var v6 = new List<(UInt128, int, int)>();
        foreach (var r in routes)
        {
            int hop = hops.IndexOf(r.NextHop);
            if (hop < 0) { hop = hops.Count; hops.Add(r.NextHop); }
            if (r.Prefix.IsV4) v4.Add((r.Prefix.V4, r.Length, hop));
            else v6.Add((r.Prefix.Value, r.Length, hop));
        }
        NextHops = hops.ToArray();
        Routes = routes.ToArray();
        _v4 = LpmTable4.Build(v4);
        _v6 = LpmTable6.Build(v6);
    }

    public static RouteTable Empty { get; } = new([]);

    public NextHop[] NextHops { get; }
    public IReadOnlyList<Route> Routes { get; }

    /// <summary>Index into <see cref="NextHops"/> of the longest matching prefix, or -1.</summary>
    public int Lookup(IpAddr destination) =>
        destination.IsV4 ? _v4.Lookup(destination.V4) : _v6.Lookup(destination.Value);
}
