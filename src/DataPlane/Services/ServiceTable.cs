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

    /// <summary>Endpoints the Service still lists that take no new connections (not ready, terminating): their
    /// established connections are kept.</summary>
    public IReadOnlyList<ServiceBackend> Retained { get; init; } = [];
}

/// <summary>
/// One frontend with everything the packet path needs from it, built once on the control path: a live update that
/// does not touch a Service reuses its frontends' entries (and their Maglev tables) in the next <see cref="ServiceTable"/>.
/// </summary>
public sealed class CompiledFrontend
{
    public CompiledFrontend(ServiceFrontend frontend, MaglevTable maglev)
    {
        Frontend = frontend;
        Maglev = maglev;
        Backends = frontend.Backends.ToArray();
        Retained = frontend.Retained.ToArray();
        SourceRanges = frontend.SourceRanges.Select(r =>
        {
            var mask = IpAddr.PrefixMask(r.Prefix.IsV4, r.Length);
            return (r.Prefix.Value & mask, mask);
        }).ToArray();
    }

    /// <summary>Builds the frontend's Maglev table with <paramref name="builder"/>'s scratch.</summary>
    public static CompiledFrontend Build(ServiceFrontend frontend, int maglevTableSize, MaglevTable.Builder builder) =>
        new(frontend, BuildMaglev(frontend.Backends, maglevTableSize, builder));

    /// <summary>The Maglev table for a backend list (several frontends of one Service port share the same list).</summary>
    public static MaglevTable BuildMaglev(IReadOnlyList<ServiceBackend> backends, int maglevTableSize, MaglevTable.Builder builder)
    {
        var members = new MaglevBackend[backends.Count];
        for (int b = 0; b < members.Length; b++) members[b] = MaglevBackend.Named($"{backends[b].Address}:{backends[b].Port}", b);
        return builder.Build(members, members.Length == 0 ? MaglevTable.MinSize : maglevTableSize);
    }

    public ServiceFrontend Frontend { get; }
    public MaglevTable Maglev { get; }
    internal ServiceBackend[] Backends { get; }
    internal ServiceBackend[] Retained { get; }
    internal (UInt128 Network, UInt128 Mask)[] SourceRanges { get; }
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
    private readonly CompiledFrontend[] _entries;

    public ServiceTable(IReadOnlyList<ServiceFrontend> frontends, int maglevTableSize = MaglevTable.DefaultSize)
        : this(Compile(frontends, maglevTableSize))
    {
    }

    /// <summary>A table over frontends compiled earlier (their Maglev tables are reused as they are).</summary>
    public ServiceTable(IReadOnlyList<CompiledFrontend> entries)
    {
        _entries = entries.ToArray();
        Frontends = _entries.Select(e => e.Frontend).ToArray();
        int size = 8;
        while (size < _entries.Length * 2) size <<= 1;
        _slots = new Slot[size];
        _mask = size - 1;
        HasAffinity = Frontends.Any(f => f.AffinityTimeout > 0);
        var vips = new List<(IpAddr, int)>(_entries.Length);
        for (int f = 0; f < _entries.Length; f++)
        {
            var fe = Frontends[f];
            int i = (int)Hash(fe.Address, fe.Port, fe.Protocol) & _mask;
            while (_slots[i].Frontend != 0) i = (i + 1) & _mask;
            _slots[i] = new Slot { Address = fe.Address.Value, Port = fe.Port, Protocol = fe.Protocol, Frontend = f + 1 };
            vips.Add((fe.Address, f));
        }
        VirtualIps = new Routing.AddressTable(vips);
    }

    private static List<CompiledFrontend> Compile(IReadOnlyList<ServiceFrontend> frontends, int maglevTableSize)
    {
        var builder = new MaglevTable.Builder();
        return frontends.Select(f => CompiledFrontend.Build(f, maglevTableSize, builder)).ToList();
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
        var entry = _entries[frontend];
        int b = entry.Maglev.Lookup(flowHash);
        var backends = entry.Backends;
        if ((uint)b >= (uint)backends.Length)
        {
            backend = default;
            return false;
        }
        backend = backends[b];
        return true;
    }

    /// <summary>Whether new connections to this frontend are SNATed to the node's address.</summary>
    public bool Masquerades(int frontend) => Frontends[frontend].Masquerade;

    /// <summary>Some frontend has session affinity (the engine then keeps an <see cref="AffinityTable"/>).</summary>
    public bool HasAffinity { get; }

    /// <summary>The frontend's ClientIP affinity timeout in nanoseconds, 0 for none.</summary>
    public long AffinityTimeout(int frontend) => Frontends[frontend].AffinityTimeout;

    /// <summary>Whether <paramref name="backend"/> is still one of the frontend's backends (affinity may outlive an endpoint).</summary>
    public bool Contains(int frontend, ServiceBackend backend) => Array.IndexOf(_entries[frontend].Backends, backend) >= 0;

    /// <summary>
    /// Whether the Service still lists <paramref name="backend"/> for this frontend, ready or not: a terminating
    /// endpoint takes no new connections but keeps its established ones (graceful termination, KEP-1672).
    /// </summary>
    public bool Lists(int frontend, ServiceBackend backend) =>
        Contains(frontend, backend) || Array.IndexOf(_entries[frontend].Retained, backend) >= 0;

    /// <summary>Whether the frontend has traffic policy Local.</summary>
    public bool IsLocalPolicy(int frontend) => Frontends[frontend].LocalPolicy;

    /// <summary>loadBalancerSourceRanges: true when <paramref name="client"/> may open a connection.</summary>
    public bool SourceAllowed(int frontend, IpAddr client)
    {
        var ranges = _entries[frontend].SourceRanges;
        if (ranges.Length == 0) return true;
        foreach (var (network, mask) in ranges)
            if ((client.Value & mask) == network) return true;
        return false;
    }

    private static ulong Hash(IpAddr address, ushort port, byte protocol) =>
        address.Hash() ^ ((ulong)port << 8 | protocol) * 0x9E37_79B9_7F4A_7C15UL;
}
