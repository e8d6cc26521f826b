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
/// <param name="Resolve">Uplink only: <see cref="Underlay"/> is the gateway's address and its MAC is resolved by the
/// engine (ARP / Neighbor Discovery, <see cref="UplinkNeighbors"/>) instead of configured.</param>
public readonly record struct NextHop(NextHopKind Kind, IpAddr Underlay, MacAddress Mac, byte IcmpCode = 0, bool Masquerade = false, bool Resolve = false);

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
        var builder = new Builder();
        var built = builder.Apply(routes);
        (_v4, _v6, NextHops, Routes) = (built._v4, built._v6, built.NextHops, built.Routes);
    }

    private RouteTable(LpmTable4 v4, LpmTable6 v6, NextHop[] nextHops, Route[] routes)
    {
        (_v4, _v6, NextHops, Routes) = (v4, v6, nextHops, routes);
    }

    public static RouteTable Empty { get; } = new([]);

    public NextHop[] NextHops { get; }

    /// <summary>The routes as stated, for explaining a lookup (<c>fastpath trace</c> names the matched prefix); control path.</summary>
    public IReadOnlyList<Route> Routes { get; }

    /// <summary>Index into <see cref="NextHops"/> of the longest matching prefix, or -1.</summary>
    public int Lookup(IpAddr destination) =>
        destination.IsV4 ? _v4.Lookup(destination.V4) : _v6.Lookup(destination.Value);

    /// <summary>
    /// Keeps the LPM builders between compilations so a change to one Node touches only its prefixes (DIR-24-8
    /// add/remove rewrite just the entries under the prefix, as rte_lpm does) instead of rebuilding every route.
    /// Next-hop indices are stable: a next hop keeps its index for the builder's lifetime. Control path only.
    /// </summary>
    public sealed class Builder
    {
        private readonly LpmTable4.Builder _v4 = new();
        private readonly LpmTable6.Builder _v6 = new();
        private readonly Dictionary<(IpAddr Prefix, int Length), NextHop> _current = [];
        private readonly List<NextHop> _hops = [];
        private readonly Dictionary<NextHop, int> _hopIndex = [];

        /// <summary>Prefixes added, replaced or removed by the last <see cref="Apply"/>.</summary>
        public int LastChanges { get; private set; }

        /// <summary>Brings the tables to exactly <paramref name="routes"/> and returns the new immutable table.</summary>
        public RouteTable Apply(IReadOnlyList<Route> routes)
        {
            var desired = new Dictionary<(IpAddr, int), NextHop>(routes.Count);
            foreach (var r in routes) desired[(Normalize(r.Prefix, r.Length), r.Length)] = r.NextHop;
            int changes = 0;
            foreach (var (key, _) in _current)
            {
                if (desired.ContainsKey(key)) continue;
                if (key.Prefix.IsV4) _v4.Remove(key.Prefix.V4, key.Length);
                else _v6.Remove(key.Prefix.Value, key.Length);
                changes++;
            }
            foreach (var (key, hop) in desired)
            {
                if (_current.TryGetValue(key, out var old) && old == hop) continue;
                int index = HopIndex(hop);
                if (key.Item1.IsV4) _v4.Add(key.Item1.V4, key.Item2, index);
                else _v6.Add(key.Item1.Value, key.Item2, index);
                changes++;
            }
            _current.Clear();
            foreach (var (key, hop) in desired) _current[key] = hop;
            LastChanges = changes;
            return new RouteTable(_v4.ToTable(), _v6.ToTable(), _hops.ToArray(),
                desired.Select(d => new Route(d.Key.Item1, d.Key.Item2, d.Value)).ToArray());
        }

        private int HopIndex(NextHop hop)
        {
            if (_hopIndex.TryGetValue(hop, out int index)) return index;
            _hops.Add(hop);
            return _hopIndex[hop] = _hops.Count - 1;
        }

        private static IpAddr Normalize(IpAddr prefix, int length) => new(prefix.Value & IpAddr.PrefixMask(prefix.IsV4, length));
    }
}
