using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using FastPath.DataPlane.Conntrack;
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

    /// <summary>Why <see cref="Backends"/> are the eligible endpoints (ready, terminating fallback, topology hint for a
    /// zone or node, traffic policy Local), for trace.</summary>
    public string Eligibility { get; init; } = "ready";

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
        MaglevSlots = maglev.SlotArray;
        // The control plane hands arrays it never changes again: kept as they are, not copied (what a change keeps
        // alive is what the next collection has to copy).
        Backends = frontend.Backends as ServiceBackend[] ?? [.. frontend.Backends];
        Retained = frontend.Retained as ServiceBackend[] ?? [.. frontend.Retained];
        (Masquerade, LocalPolicy, AffinityTimeout) = (frontend.Masquerade, frontend.LocalPolicy, frontend.AffinityTimeout);
        SourceRanges = frontend.SourceRanges.Count == 0 ? [] : frontend.SourceRanges.Select(r =>
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
        Span<char> name = stackalloc char[64]; // "address:port", formatted in place: 10,000 Services × N backends need no strings
        for (int b = 0; b < members.Length; b++)
        {
            var backend = backends[b];
            members[b] = name.TryWrite(System.Globalization.CultureInfo.InvariantCulture, $"{backend.Address}:{backend.Port}", out int length)
                ? new MaglevBackend(MaglevBackend.IdentityOf(name[..length]), b)
                : MaglevBackend.Named($"{backend.Address}:{backend.Port}", b);
        }
        return builder.Build(members, members.Length == 0 ? MaglevTable.MinSize : maglevTableSize);
    }

    public ServiceFrontend Frontend { get; }
    public MaglevTable Maglev { get; }
    // Maglev's slots read straight from here: one dependent load fewer for a new connection.
    internal readonly ushort[] MaglevSlots;
    // Copied out of the frontend record so a new connection reads them from this one object.
    internal readonly bool Masquerade, LocalPolicy;
    internal readonly long AffinityTimeout;
    internal ServiceBackend[] Backends { get; }
    internal ServiceBackend[] Retained { get; }
    internal (UInt128 Network, UInt128 Mask)[] SourceRanges { get; }
}

/// <summary>
/// Service frontends (virtual IP, port, protocol) → backends chosen by Maglev. Exact match by open addressing over
/// structs. Frontends are spread over shards by virtual IP, each with its own small slot array and its own set of
/// virtual IPs (so traffic to a Service address on a port it does not have is rejected instead of routed): a live
/// change rebuilds only the shards its frontends fall in and shares the others with the previous table
/// (<see cref="Update"/>), so publishing one Service change costs microseconds at 10,000 Services. Built off the
/// packet path, immutable afterwards.
/// </summary>
public sealed class ServiceTable
{
    private struct Slot
    {
        public UInt128 Address;
        public ushort Port;
        public byte Protocol;
        public int Frontend; // local index + 1; 0 = empty
    }

    /// <summary>About this many frontends per shard: a shard rebuild stays a few microseconds.</summary>
    private const int ShardTarget = 64;
    private const int LocalBits = 17; // frontends per shard; up to 2^14 shards

    private sealed class Shard
    {
        public readonly CompiledFrontend[] Entries;
        public readonly Slot[] Slots;
        public readonly int Mask;
        public readonly Routing.AddressTable VirtualIps;
        public readonly bool HasAffinity;

        /// <summary>Per entry: the <see cref="Version"/> of the table that added it (an entry carried over from the
        /// previous shard is the same object with the same backends, and keeps its stamp).</summary>
        public readonly int[] Stamps;

        public Shard(CompiledFrontend[] entries, int[] stamps)
        {
            Entries = entries;
            Stamps = stamps;
            int size = 8;
            while (size < entries.Length * 2) size <<= 1;
            Slots = new Slot[size];
            Mask = size - 1;
            var vips = new List<(IpAddr, int)>(entries.Length);
            for (int f = 0; f < entries.Length; f++)
            {
                var fe = entries[f].Frontend;
                int i = (int)Hash(fe.Address, fe.Port, fe.Protocol) & Mask;
                while (Slots[i].Frontend != 0) i = (i + 1) & Mask;
                Slots[i] = new Slot { Address = fe.Address.Value, Port = fe.Port, Protocol = fe.Protocol, Frontend = f + 1 };
                vips.Add((fe.Address, f));
                HasAffinity |= fe.AffinityTimeout > 0;
            }
            VirtualIps = new Routing.AddressTable(vips);
        }

        public static readonly Shard Empty = new([], []);
    }

    private readonly Shard[] _shards;
    private readonly int _shardMask;
    private static int s_versions;

    /// <summary>Unique per table, increasing in construction order: tracked connections remember which table they
    /// were last checked against.</summary>
    public int Version { get; }

    /// <summary>How many tables back <see cref="UnchangedSince"/> can answer without a Service lookup: a connection
    /// idle for more changes than this is checked in full once.</summary>
    public const int AncestryDepth = 128;

    /// <summary>
    /// This table's <see cref="Version"/> and those of the tables it was made from by <see cref="Update"/>, newest
    /// first, at most <see cref="AncestryDepth"/>; a table built whole starts its own line. Every table in it is an
    /// ancestor, so a shard or entry stamped at or before one of them is the very object that ancestor held.
    /// </summary>
    private readonly int[] _ancestry;

    /// <summary>Per shard: the <see cref="Version"/> of the table that built the shard this table holds.</summary>
    private readonly int[] _shardStamps;

    public ServiceTable(IReadOnlyList<ServiceFrontend> frontends, int maglevTableSize = MaglevTable.DefaultSize)
        : this(Compile(frontends, maglevTableSize))
    {
    }

    /// <summary>A table over frontends compiled earlier (their Maglev tables are reused as they are).</summary>
    public ServiceTable(IReadOnlyList<CompiledFrontend> entries)
    {
        Version = Interlocked.Increment(ref s_versions);
        int shards = 1;
        while (shards * ShardTarget < entries.Count) shards <<= 1;
        _shardMask = shards - 1;
        var groups = new List<CompiledFrontend>?[shards];
        foreach (var e in entries) (groups[ShardOf(e.Frontend.Address)] ??= []).Add(e);
        int version = Version;
        _shards = groups.Select(g => g is null ? Shard.Empty : new Shard(g.ToArray(), Enumerable.Repeat(version, g.Count).ToArray())).ToArray();
        _shardStamps = Enumerable.Repeat(version, shards).ToArray();
        _ancestry = [version];
        Count = entries.Count;
        HasAffinity = _shards.Any(x => x.HasAffinity);
    }

    private ServiceTable(int version, Shard[] shards, int[] shardStamps, int[] ancestry, int count)
    {
        Version = version;
        _shards = shards;
        _shardStamps = shardStamps;
        _ancestry = ancestry;
        _shardMask = shards.Length - 1;
        Count = count;
        HasAffinity = _shards.Any(x => x.HasAffinity);
    }

    private static List<CompiledFrontend> Compile(IReadOnlyList<ServiceFrontend> frontends, int maglevTableSize)
    {
        var builder = new MaglevTable.Builder();
        return frontends.Select(f => CompiledFrontend.Build(f, maglevTableSize, builder)).ToList();
    }

    /// <summary>
    /// A new table without <paramref name="removed"/> (matched by reference) and with <paramref name="added"/>: only the
    /// shards they fall in are rebuilt, the rest are shared with this table. When the count outgrows the shard count
    /// by far (or shrinks a lot) the table is rebuilt with a fitting number of shards.
    /// </summary>
    public ServiceTable Update(IReadOnlyCollection<CompiledFrontend> removed, IReadOnlyCollection<CompiledFrontend> added)
    {
        int count = Count - removed.Count + added.Count;
        int shards = _shards.Length;
        if (count > shards * ShardTarget * 4 || (shards > 1 && count < shards * ShardTarget / 4))
        {
            var gone = removed.ToHashSet(ReferenceEqualityComparer.Instance);
            return new ServiceTable(Entries().Where(e => !gone.Contains(e)).Concat(added).ToList());
        }
        var touched = new Dictionary<int, List<CompiledFrontend>>();
        List<CompiledFrontend> Touch(int shard) =>
            touched.TryGetValue(shard, out var list) ? list : touched[shard] = [.. _shards[shard].Entries];
        foreach (var e in removed) Touch(ShardOf(e.Frontend.Address)).Remove(e);
        foreach (var e in added) Touch(ShardOf(e.Frontend.Address)).Add(e);
        int version = Interlocked.Increment(ref s_versions);
        var next = (Shard[])_shards.Clone();
        var stamps = (int[])_shardStamps.Clone();
        foreach (var (shard, entries) in touched)
        {
            stamps[shard] = version;
            var old = _shards[shard];
            // Touch kept the carried entries in their order and appended the added ones: one pass over both lists
            // gives each carried entry its stamp (an entry not found, added or re-added, gets this version).
            var entryStamps = new int[entries.Count];
            for (int i = 0, j = 0; i < entryStamps.Length; i++)
            {
                while (j < old.Entries.Length && !ReferenceEquals(old.Entries[j], entries[i])) j++;
                entryStamps[i] = j < old.Entries.Length ? old.Stamps[j++] : version;
            }
            next[shard] = entries.Count == 0 ? Shard.Empty : new Shard(entries.ToArray(), entryStamps);
        }
        var ancestry = new int[Math.Min(AncestryDepth, _ancestry.Length + 1)];
        ancestry[0] = version;
        Array.Copy(_ancestry, 0, ancestry, 1, ancestry.Length - 1);
        return new ServiceTable(version, next, stamps, ancestry, count);
    }

    /// <summary>
    /// Whether the frontend (<paramref name="address"/>, <paramref name="port"/>, <paramref name="protocol"/>) is the
    /// same object in this table as in the table of version <paramref name="version"/>, known without comparing them:
    /// that table is this one or one of its last <see cref="AncestryDepth"/> ancestors, and the frontend's shard was
    /// built no later (one array read), or the shard was rebuilt since but carried this frontend over (one lookup).
    /// A connection checked against that table then needs no check against this one, however many changes ago that
    /// was (issue 20: under 1,000 changes a second a connection re-checks only when its own Service changed, not every
    /// time its packets skipped a table). False for a table outside that line, or a frontend removed or changed since.
    /// </summary>
    public bool UnchangedSince(int version, IpAddr address, ushort port, byte protocol)
    {
        if (version == Version) return true;
        if (version <= 0 || version > Version || Array.IndexOf(_ancestry, version) < 0) return false;
        int shard = ShardOf(address);
        if (_shardStamps[shard] <= version) return true;
        int frontend = Lookup(address, port, protocol);
        return frontend >= 0 && _shards[shard].Stamps[frontend & ((1 << LocalBits) - 1)] <= version;
    }

    private int ShardOf(IpAddr address) => ShardOf(address.Hash());

    private int ShardOf(ulong addressHash) => (int)(addressHash >> 40) & _shardMask;

    private IEnumerable<CompiledFrontend> Entries() => _shards.SelectMany(x => x.Entries);

    /// <summary>Bytes of the Maglev slot arrays the frontends hold, a table shared by several counted once (O(frontends)).</summary>
    public long MaglevBytes => Entries().Select(e => e.Maglev).Distinct().Sum(t => (long)t.Bytes);

    public static ServiceTable Empty { get; } = new(Array.Empty<CompiledFrontend>());

    /// <summary>Every frontend (control path: O(frontends)).</summary>
    public IReadOnlyList<ServiceFrontend> Frontends => Entries().Select(e => e.Frontend).ToList();

    public int Count { get; }

    /// <summary>Whether <paramref name="address"/> is a Service address (any port), for rejecting ports a Service does not have.</summary>
    /// <remarks>Not inlined: the engine's Forward is large, and inlining this into it costs the JIT's budget for the
    /// tracked-connection path (measured: clusterip-established 20% slower).</remarks>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public bool IsVirtualIp(IpAddr address)
    {
        ulong hash = address.Hash();
        return _shards[ShardOf(hash)].VirtualIps.Lookup(address, hash) >= 0;
    }

    /// <summary>The frontend for a destination, or -1.</summary>
    public int Lookup(IpAddr address, ushort port, byte protocol)
    {
        int shardIndex = ShardOf(address);
        var shard = _shards[shardIndex];
        var slots = shard.Slots;
        int mask = shard.Mask;
        int i = (int)Hash(address, port, protocol) & mask;
        while (true)
        {
            ref var s = ref slots[i];
            if (s.Frontend == 0) return -1;
            if (s.Address == address.Value && s.Port == port && s.Protocol == protocol) return shardIndex << LocalBits | (s.Frontend - 1);
            i = (i + 1) & mask;
        }
    }

    private CompiledFrontend Entry(int frontend) => _shards[frontend >> LocalBits].Entries[frontend & ((1 << LocalBits) - 1)];

    /// <summary>The frontend a <see cref="Lookup"/> result names.</summary>
    public ServiceFrontend Frontend(int frontend) => Entry(frontend).Frontend;

    /// <summary>Picks a backend for a new flow by Maglev (same flow hash, same backend, on every node); false when the frontend has none.</summary>
    public bool TrySelect(int frontend, ulong flowHash, out ServiceBackend backend)
    {
        var entry = Entry(frontend);
        int b = MaglevTable.Lookup(entry.MaglevSlots, flowHash);
        var backends = entry.Backends;
        if ((uint)b >= (uint)backends.Length)
        {
            backend = default;
            return false;
        }
        backend = backends[b];
        return true;
    }

    /// <summary>
    /// Brings into the cache what <see cref="ServiceNat.Open"/> will read for the tuples of <paramref name="keys"/>
    /// marked in <paramref name="opening"/> (connection openings: TCP SYNs), without deciding anything: with 10,000
    /// Services, a new connection's chain (frontend slot → frontend → Maglev slot array → its slot → backend array) is a
    /// run of dependent cache misses. As <see cref="ConntrackTable.LookupBatch"/> does for hits, each
    /// link is taken for the whole batch before the next, so the misses of a batch overlap instead of adding up.
    /// Nothing changes; <paramref name="frontends"/> (at least keys.Length long) receives <see cref="Lookup"/>'s answer
    /// for each marked tuple and -1 for the others.
    /// </summary>
    public void PrefetchOpen(ReadOnlySpan<FlowKey> keys, ReadOnlySpan<bool> opening, Span<int> frontends)
    {
        int n = Math.Min(keys.Length, opening.Length);
        for (int j = 0; j < n; j++)
        {
            if (!opening[j]) continue;
            ref readonly var k = ref keys[j];
            var shard = _shards[ShardOf(k.Destination)];
            Prefetch(ref Unsafe.As<Slot, byte>(ref shard.Slots[(int)Hash(k.Destination, k.DestinationPort, k.Protocol) & shard.Mask]));
        }
        for (int j = 0; j < n; j++)
        {
            int f = frontends[j] = opening[j] ? Lookup(keys[j].Destination, keys[j].DestinationPort, keys[j].Protocol) : -1;
            if (f >= 0) Prefetch(ref Unsafe.As<ushort[], byte>(ref Unsafe.AsRef(in Entry(f).MaglevSlots)));
        }
        for (int j = 0; j < n; j++)
        {
            int f = frontends[j];
            if (f < 0) continue;
            var entry = Entry(f);
            ushort[] slots = entry.MaglevSlots;
            ref ushort first = ref MemoryMarshal.GetArrayDataReference(slots);
            Prefetch(ref Unsafe.As<ushort, byte>(ref Unsafe.Subtract(ref first, 4))); // the array's length, 8 bytes before
            Prefetch(ref Unsafe.As<ushort, byte>(ref Unsafe.Add(ref first, (int)(keys[j].Hash(ServiceNat.FlowSeed) % (ulong)slots.Length))));
            Prefetch(ref Unsafe.As<ServiceBackend, byte>(ref MemoryMarshal.GetArrayDataReference(entry.Backends)));
        }
    }

    // A hint: a prefetch never faults, and an address the GC has since moved only wastes it.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Prefetch(ref byte at)
    {
        if (Sse.IsSupported) Sse.Prefetch0(Unsafe.AsPointer(ref at));
    }

    /// <summary>The frontend's Maglev table (traces show the slot a flow hashed to).</summary>
    public MaglevTable Maglev(int frontend) => Entry(frontend).Maglev;

    /// <summary>Whether new connections to this frontend are SNATed to the node's address.</summary>
    public bool Masquerades(int frontend) => Entry(frontend).Masquerade;

    /// <summary>Some frontend has session affinity (the engine then keeps an <see cref="AffinityTable"/>).</summary>
    public bool HasAffinity { get; }

    /// <summary>The frontend's ClientIP affinity timeout in nanoseconds, 0 for none.</summary>
    public long AffinityTimeout(int frontend) => Entry(frontend).AffinityTimeout;

    /// <summary>Whether <paramref name="backend"/> is still one of the frontend's backends (affinity may outlive an endpoint).</summary>
    public bool Contains(int frontend, ServiceBackend backend) => Array.IndexOf(Entry(frontend).Backends, backend) >= 0;

    /// <summary>
    /// Whether the Service still lists <paramref name="backend"/> for this frontend, ready or not: a terminating
    /// endpoint takes no new connections but keeps its established ones (graceful termination, KEP-1672).
    /// </summary>
    public bool Lists(int frontend, ServiceBackend backend) =>
        Contains(frontend, backend) || Array.IndexOf(Entry(frontend).Retained, backend) >= 0;

    /// <summary>Whether the frontend has traffic policy Local.</summary>
    public bool IsLocalPolicy(int frontend) => Entry(frontend).LocalPolicy;

    /// <summary>loadBalancerSourceRanges: true when <paramref name="client"/> may open a connection.</summary>
    public bool SourceAllowed(int frontend, IpAddr client)
    {
        var ranges = Entry(frontend).SourceRanges;
        if (ranges.Length == 0) return true;
        foreach (var (network, mask) in ranges)
            if ((client.Value & mask) == network) return true;
        return false;
    }

    private static ulong Hash(IpAddr address, ushort port, byte protocol) =>
        address.Hash() ^ ((ulong)port << 8 | protocol) * 0x9E37_79B9_7F4A_7C15UL;
}
