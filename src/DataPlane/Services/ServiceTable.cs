using FastPath.DataPlane.Packets;

namespace FastPath.DataPlane.Services;

/// <summary>One backend of a Service frontend: an endpoint address and the (resolved) target port.</summary>
public readonly record struct ServiceBackend(IpAddr Address, ushort Port);

/// <summary>A Service port on one address (ClusterIP, node address for a NodePort, LoadBalancer or external IP).</summary>
/// <param name="Name">"namespace/service:port" for traces and counters.</param>
public sealed record ServiceFrontend(string Name, IpAddr Address, ushort Port, byte Protocol, IReadOnlyList<ServiceBackend> Backends)
{
    /// <summary>SNAT clients to the node's address, so replies return through this node (Kubernetes requires it for
    /// NodePort, LoadBalancer and external IPs with externalTrafficPolicy: Cluster).</summary>
    public bool Masquerade { get; init; }

    /// <summary>sessionAffinity: ClientIP idle timeout in nanoseconds; 0 = no affinity.</summary>
    public long AffinityTimeout { get; init; }

    /// <summary>Traffic policy Local: only this node's endpoints, and none means drop (not reject).</summary>
    public bool LocalPolicy { get; init; }

    /// <summary>loadBalancerSourceRanges: the client prefixes allowed; empty allows everyone.</summary>
    public IReadOnlyList<(IpAddr Prefix, int Length)> SourceRanges { get; init; } = [];
}

/// <summary>
/// Service frontends (virtual IP, port, protocol) → backends chosen by Maglev. Exact match by open addressing over
/// structs; a second table knows every virtual IP so traffic to a Service address on a port it does not have is
/// rejected instead of routed. Built off the packet path, immutable afterwards.
/// </summary>
public sealed class ServiceTable
{
    private struct Slot
    {
        public UInt128 Address;
        public ushort Port;
        public byte Protocol;
        public int Frontend; // index + 1; 0 = empty
    }

    private readonly Slot[] _slots;
    private readonly int _mask;
    private readonly MaglevTable[] _maglev;
    private readonly ServiceBackend[][] _backends;
    private readonly bool[] _masquerade;
    private readonly bool[] _localPolicy;
    private readonly long[] _affinity;
    private readonly HashSet<(IpAddr, ushort, byte)> _allBackends;
    private readonly (UInt128 Network, UInt128 Mask)[][] _sourceRanges;

    public ServiceTable(IReadOnlyList<ServiceFrontend> frontends, int maglevTableSize = MaglevTable.DefaultSize)
    {
        Frontends = frontends.ToArray();
        int size = 8;
        while (size < Frontends.Length * 2) size <<= 1;
        _slots = new Slot[size];
        _mask = size - 1;
        _maglev = new MaglevTable[Frontends.Length];
        _backends = new ServiceBackend[Frontends.Length][];
        _masquerade = Frontends.Select(f => f.Masquerade).ToArray();
        _localPolicy = Frontends.Select(f => f.LocalPolicy).ToArray();
        _affinity = Frontends.Select(f => f.AffinityTimeout).ToArray();
        HasAffinity = _affinity.Any(t => t > 0);
        _allBackends = Frontends.SelectMany(f => f.Backends.Select(b => (b.Address, b.Port, f.Protocol))).ToHashSet();
        _sourceRanges = Frontends.Select(f => f.SourceRanges.Select(r =>
        {
            var mask = IpAddr.PrefixMask(r.Prefix.IsV4, r.Length);
            return (r.Prefix.Value & mask, mask);
        }).ToArray()).ToArray();
        var builder = new MaglevTable.Builder();
        var vips = new List<(IpAddr, int)>();
        for (int f = 0; f < Frontends.Length; f++)
        {
            var fe = Frontends[f];
            int i = (int)Hash(fe.Address, fe.Port, fe.Protocol) & _mask;
            while (_slots[i].Frontend != 0) i = (i + 1) & _mask;
            _slots[i] = new Slot { Address = fe.Address.Value, Port = fe.Port, Protocol = fe.Protocol, Frontend = f + 1 };
            _backends[f] = fe.Backends.ToArray();
            var members = new MaglevBackend[_backends[f].Length];
            for (int b = 0; b < members.Length; b++)
                members[b] = MaglevBackend.Named($"{_backends[f][b].Address}:{_backends[f][b].Port}", b);
            _maglev[f] = builder.Build(members, members.Length == 0 ? MaglevTable.MinSize : maglevTableSize);
            vips.Add((fe.Address, f));
        }
        VirtualIps = new Routing.AddressTable(vips);
    }

    public static ServiceTable Empty { get; } = new([]);

    public ServiceFrontend[] Frontends { get; }

    /// <summary>Every Service address (any port), for rejecting ports a Service does not have.</summary>
    public Routing.AddressTable VirtualIps { get; }

    public int Count => Frontends.Length;

    /// <summary>The frontend for a destination, or -1.</summary>
    public int Lookup(IpAddr address, ushort port, byte protocol)
    {
        var slots = _slots;
        int i = (int)Hash(address, port, protocol) & _mask;
        while (true)
        {
            ref var s = ref slots[i];
            if (s.Frontend == 0) return -1;
            if (s.Address == address.Value && s.Port == port && s.Protocol == protocol) return s.Frontend - 1;
            i = (i + 1) & _mask;
        }
    }

    /// <summary>Picks a backend for a new flow by Maglev (same flow hash, same backend, on every node); false when the frontend has none.</summary>
    public bool TrySelect(int frontend, ulong flowHash, out ServiceBackend backend)
    {
        int b = _maglev[frontend].Lookup(flowHash);
        var backends = _backends[frontend];
        if ((uint)b >= (uint)backends.Length)
        {
            backend = default;
            return false;
        }
        backend = backends[b];
        return true;
    }

    /// <summary>The frontend's Maglev table (traces show the slot a flow hashed to).</summary>
    public MaglevTable Maglev(int frontend) => _maglev[frontend];

    /// <summary>Whether new connections to this frontend are SNATed to the node's address.</summary>
    public bool Masquerades(int frontend) => _masquerade[frontend];

    /// <summary>Some frontend has session affinity (the engine then keeps an <see cref="AffinityTable"/>).</summary>
    public bool HasAffinity { get; }

    /// <summary>The frontend's ClientIP affinity timeout in nanoseconds, 0 for none.</summary>
    public long AffinityTimeout(int frontend) => _affinity[frontend];

    /// <summary>Whether <paramref name="backend"/> is still one of the frontend's backends (affinity may outlive an endpoint).</summary>
    public bool Contains(int frontend, ServiceBackend backend) => Array.IndexOf(_backends[frontend], backend) >= 0;

    /// <summary>Whether the frontend has traffic policy Local.</summary>
    public bool IsLocalPolicy(int frontend) => _localPolicy[frontend];

    /// <summary>loadBalancerSourceRanges: true when <paramref name="client"/> may open a connection.</summary>
    public bool SourceAllowed(int frontend, IpAddr client)
    {
        var ranges = _sourceRanges[frontend];
        if (ranges.Length == 0) return true;
        foreach (var (network, mask) in ranges)
            if ((client.Value & mask) == network) return true;
        return false;
    }

    /// <summary>Whether any frontend has this backend (control path: flushing connections to removed endpoints).</summary>
    public bool HasBackend(IpAddr address, ushort port, byte protocol) => _allBackends.Contains((address, port, protocol));

    private static ulong Hash(IpAddr address, ushort port, byte protocol) =>
        address.Hash() ^ ((ulong)port << 8 | protocol) * 0x9E37_79B9_7F4A_7C15UL;
}
