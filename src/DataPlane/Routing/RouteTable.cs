using System.Collections.Immutable;
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
    private readonly ImmutableDictionary<(IpAddr Prefix, int Length), NextHop> _routes;

    public RouteTable(IReadOnlyList<Route> routes)
    {
        var builder = new Builder();
        var built = builder.Apply(routes);
        (_v4, _v6, NextHops, _routes, AnyMasquerade) = (built._v4, built._v6, built.NextHops, built._routes, built.AnyMasquerade);
    }

    private RouteTable(LpmTable4 v4, LpmTable6 v6, NextHop[] nextHops, ImmutableDictionary<(IpAddr, int), NextHop> routes, bool anyMasquerade)
    {
        (_v4, _v6, NextHops, _routes, AnyMasquerade) = (v4, v6, nextHops, routes, anyMasquerade);
    }

    public static RouteTable Empty { get; } = new([]);

    /// <summary>
    /// What <see cref="Lookup"/> results index. May be longer than the hops in use (the builder shares one growing
    /// array between snapshots; a snapshot's lookups never return an index it does not hold).
    /// </summary>
    public NextHop[] NextHops { get; }

    /// <summary>Whether any next hop masquerades (the snapshot then needs connection tracking).</summary>
    public bool AnyMasquerade { get; }

    /// <summary>The routes as stated, for explaining a lookup (<c>fastpath trace</c> names the matched prefix); control path.</summary>
    public IEnumerable<Route> Routes => _routes.Select(r => new Route(r.Key.Prefix, r.Key.Length, r.Value));

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
        private readonly LpmTable4.Builder _v4;
        private readonly LpmTable6.Builder _v6 = new();
        private ImmutableDictionary<(IpAddr Prefix, int Length), NextHop> _current = ImmutableDictionary<(IpAddr, int), NextHop>.Empty;
        // Hops only ever get appended, so snapshots share this array: an older snapshot reads only the indices it
        // knew. It is copied only when it grows past its capacity (amortised, as a List does).
        private NextHop[] _hops = new NextHop[16];
        private int _hopCount;
        private bool _anyMasquerade;
        private readonly Dictionary<NextHop, int> _hopIndex = [];
        private LpmTable6? _v6Table;

        /// <param name="flatten">Flatten published IPv4 tables off the change path (<see cref="LpmTable4.Builder.FlattenPublished"/>).</param>
        public Builder(bool flatten = true) => _v4 = new LpmTable4.Builder { FlattenPublished = flatten };

        /// <summary>Prefixes added, replaced or removed by the last <see cref="Apply"/> or <see cref="Update"/>.</summary>
        public int LastChanges { get; private set; }

        /// <summary>Brings the tables to exactly <paramref name="routes"/> and returns the new immutable table. O(routes).</summary>
        public RouteTable Apply(IReadOnlyList<Route> routes)
        {
            var desired = new Dictionary<(IpAddr, int), NextHop>(routes.Count);
            foreach (var r in routes) desired[(Normalize(r.Prefix, r.Length), r.Length)] = r.NextHop;
            var next = _current.ToBuilder();
            int changes = 0;
            foreach (var (key, _) in _current)
            {
                if (desired.ContainsKey(key)) continue;
                RemoveRoute(key);
                next.Remove(key);
                changes++;
            }
            foreach (var (key, hop) in desired)
            {
                if (_current.TryGetValue(key, out var old) && old == hop) continue;
                AddRoute(key, hop);
                next[key] = hop;
                changes++;
            }
            return Publish(next.ToImmutable(), changes);
        }

        /// <summary>
        /// Removes the <paramref name="removed"/> prefixes and then adds or replaces <paramref name="added"/>: O(the
        /// routes named), for a change to one Node at any cluster size. The caller makes sure no other owner states a
        /// removed prefix.
        /// </summary>
        public RouteTable Update(IReadOnlyList<Route> removed, IReadOnlyList<Route> added)
        {
            var next = _current;
            int changes = 0;
            foreach (var r in removed)
            {
                var key = (Normalize(r.Prefix, r.Length), r.Length);
                if (!next.ContainsKey(key)) continue;
                RemoveRoute(key);
                next = next.Remove(key);
                changes++;
            }
            foreach (var r in added)
            {
                var key = (Normalize(r.Prefix, r.Length), r.Length);
                if (next.TryGetValue(key, out var old) && old == r.NextHop) continue;
                AddRoute(key, r.NextHop);
                next = next.SetItem(key, r.NextHop);
                changes++;
            }
            return Publish(next, changes);
        }

        private void RemoveRoute((IpAddr Prefix, int Length) key)
        {
            if (key.Prefix.IsV4) _v4.Remove(key.Prefix.V4, key.Length);
            else { _v6.Remove(key.Prefix.Value, key.Length); _v6Table = null; }
        }

        private void AddRoute((IpAddr Prefix, int Length) key, NextHop hop)
        {
            int index = HopIndex(hop);
            if (key.Prefix.IsV4) _v4.Add(key.Prefix.V4, key.Length, index);
            else { _v6.Add(key.Prefix.Value, key.Length, index); _v6Table = null; }
        }

        private RouteTable Publish(ImmutableDictionary<(IpAddr, int), NextHop> routes, int changes)
        {
            _current = routes;
            LastChanges = changes;
            // The IPv6 trie is re-expanded from its route set, so only when an IPv6 route changed.
            _v6Table ??= _v6.ToTable();
            return new RouteTable(_v4.ToTable(), _v6Table, _hops, routes, _anyMasquerade);
        }

        private int HopIndex(NextHop hop)
        {
            if (_hopIndex.TryGetValue(hop, out int index)) return index;
            if (_hopCount == _hops.Length) Array.Resize(ref _hops, _hops.Length * 2); // older snapshots keep the old array
            _hops[_hopCount] = hop;
            _anyMasquerade |= hop.Masquerade;
            return _hopIndex[hop] = _hopCount++;
        }

        private static IpAddr Normalize(IpAddr prefix, int length) => new(prefix.Value & IpAddr.PrefixMask(prefix.IsV4, length));
    }
}
