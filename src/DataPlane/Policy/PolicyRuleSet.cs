using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using FastPath.DataPlane.Packets;

namespace FastPath.DataPlane.Policy;

/// <summary>
/// A run of (protocol, port) keys, inclusive, in the key space <c>protocol &lt;&lt; 16 | port</c> (see <see cref="PolicyRuleSet.Key"/>):
/// one TCP port is <c>[6·65536+80, 6·65536+80]</c>, "any port of UDP" <c>[17·65536, 17·65536+65535]</c>, "anything"
/// <see cref="All"/>.
/// </summary>
public readonly record struct ProtocolPortRange(uint First, uint Last)
{
    public static readonly ProtocolPortRange All = new(0, 0xFF_FFFF);

    public static ProtocolPortRange Of(byte protocol, ushort first, ushort last) =>
        new((uint)protocol << 16 | first, (uint)protocol << 16 | last);

    public static ProtocolPortRange AnyPort(byte protocol) => Of(protocol, 0, ushort.MaxValue);
}

/// <summary>
/// One address range of peers (inclusive, in <see cref="IpAddr"/>'s 128-bit space, IPv4 mapped) and the ports it may
/// use: the unit the control plane compiles a NetworkPolicy rule's peers into.
/// </summary>
public readonly record struct PeerRule(UInt128 First, UInt128 Last, IReadOnlyList<ProtocolPortRange> Ports);

/// <summary>
/// What one isolated pod allows in one direction: the union of the rules of every policy that selects it, compiled
/// into disjoint sorted address segments, each pointing at a <i>class</i> — a sorted, merged list of port ranges.
/// A verdict is one binary search over the segment starts (O(log segments)) and one over the class's ranges.
/// Immutable once built; shared by every pod selected by the same policies (and resolving named ports alike).
/// </summary>
/// <remarks>
/// Address-based, like Calico's ipsets rather than Cilium's identities: pod selectors are resolved to pod IPs at
/// compile time, so the packet path needs no identity lookup and a pod's IP change is just a recompile.
/// </remarks>
public sealed class PolicyRuleSet
{
    private readonly UInt128[] _starts; // segment i covers [_starts[i], _starts[i+1]); _starts[0] == 0
    private readonly int[] _segmentClass; // -1: no rule matches the segment
    private readonly int[] _classOffsets; // class c's ranges are [_classOffsets[c], _classOffsets[c+1])
    private readonly uint[] _first, _last;

    /// <param name="rules">Possibly overlapping peer ranges; where they overlap the ports are united.</param>
    /// <param name="policies">The ids of the policies that isolate the pods using this set (for denial counters).</param>
    public PolicyRuleSet(IReadOnlyList<PeerRule> rules, IReadOnlyList<int> policies)
    {
        Policies = [.. policies];
        // Sweep over range boundaries: at every boundary the set of covering rules changes; each segment between two
        // boundaries gets the union of its covering rules' ports, interned as a class. Rules share few distinct port
        // lists (one per policy rule, or per named-port target), so the sweep tracks which *lists* cover a point and
        // unites each distinct combination once: with one rule per pod address, per-boundary unions and string keys
        // were 80 % of a 10,000-pod compile.
        var listIds = new Dictionary<IReadOnlyList<ProtocolPortRange>, int>(PortListComparer.Instance);
        var lists = new List<IReadOnlyList<ProtocolPortRange>>();
        // Scratch kept per thread: an incremental compile rebuilds sets of thousands of peer addresses per change, and
        // new arrays each time (32 bytes per peer range) were most of a namespace relabel's garbage (8 gen2 collections
        // per 1,000 relabels on `control-plane-stats policy`). Not ArrayPool.Shared: it rounds up to powers of two (past
        // the large-object threshold here) and drops its arrays at gen2 collections under memory pressure, and its
        // Rent was 15 % of a pod add's compile in a profile on the shared VM.
        var scratch = t_scratch ??= new Scratch();
        var at = Scratch.Grow(ref scratch.At, rules.Count * 2 + 1);
        var change = Scratch.Grow(ref scratch.Change, rules.Count * 2 + 1); // list << 1 | 1 when a range of that list opens, | 0 when one closes
        int eventCount = 0;
        IReadOnlyList<ProtocolPortRange>? lastPorts = null;
        int list = -1;
        foreach (var rule in rules)
        {
            // The rules of one peer share one port list object: skip the content hash for a run of them.
            if (!ReferenceEquals(rule.Ports, lastPorts) && !listIds.TryGetValue(lastPorts = rule.Ports, out list))
            {
                listIds.Add(rule.Ports, list = lists.Count);
                lists.Add(rule.Ports);
            }
            (at[eventCount], change[eventCount++]) = (rule.First, list << 1 | 1);
            if (rule.Last != UInt128.MaxValue) (at[eventCount], change[eventCount++]) = (rule.Last + 1, list << 1);
        }
        SortEvents(at, change, eventCount, lists.Count);

        var starts = Scratch.Grow(ref scratch.Starts, eventCount + 1);
        var segmentClass = Scratch.Grow(ref scratch.SegmentClass, eventCount + 1);
        int segments = 1;
        (starts[0], segmentClass[0]) = (UInt128.Zero, -1);
        var classes = new Dictionary<IReadOnlyList<ProtocolPortRange>, int>(PortListComparer.Instance);
        var classRanges = new List<List<ProtocolPortRange>>();
        var combinations = new Dictionary<ulong, List<(int[] Lists, int Class)>>(); // by Zobrist hash of the covering lists
        var covering = new int[lists.Count];
        var active = new List<int>(); // the lists covering the sweep's position, sorted
        ulong hash = 0;
        int cls = -1;
        for (int e = 0; e < eventCount;)
        {
            UInt128 position = at[e];
            bool changed = false;
            for (; e < eventCount && at[e] == position; e++)
            {
                list = change[e] >> 1;
                bool opens = (change[e] & 1) != 0;
                int before = covering[list];
                covering[list] += opens ? 1 : -1;
                if ((before == 0) == (covering[list] == 0)) continue;
                int slot = active.BinarySearch(list);
                if (opens) active.Insert(~slot, list); else active.RemoveAt(slot);
                hash ^= Zobrist(list);
                changed = true;
            }
            if (changed) cls = active.Count == 0 ? -1 : ClassOf(active, hash, lists, combinations, classes, classRanges);
            if (segmentClass[segments - 1] == cls) continue; // same class as the segment before: extend it
            if (starts[segments - 1] == position) segmentClass[segments - 1] = cls; // only at address 0
            else (starts[segments], segmentClass[segments++]) = (position, cls);
        }
        _starts = starts.AsSpan(0, segments).ToArray();
        _segmentClass = segmentClass.AsSpan(0, segments).ToArray();
        _classOffsets = new int[classRanges.Count + 1];
        var first = new List<uint>();
        var last = new List<uint>();
        for (int c = 0; c < classRanges.Count; c++)
        {
            _classOffsets[c] = first.Count;
            foreach (var range in classRanges[c]) { first.Add(range.First); last.Add(range.Last); }
        }
        _classOffsets[^1] = first.Count;
        _first = [.. first];
        _last = [.. last];
    }

    /// <summary>
    /// Sorts the sweep's events by address. When every address is IPv4 (mapped: below 2^49, the end of a range
    /// included) and the lists number fewer than 2^14, address and change pack into one ulong and sort as primitives,
    /// with no comparer and no parallel array to move; events at one address may then come in another order, which
    /// the sweep does not see (it applies every event of an address before it reads the cover).
    /// </summary>
    private static void SortEvents(UInt128[] at, int[] change, int count, int listCount)
    {
        const int ChangeBits = 15;
        bool packable = listCount < 1 << (ChangeBits - 1);
        for (int i = 0; i < count && packable; i++) packable = at[i] < (UInt128)1 << (64 - ChangeBits);
        if (!packable)
        {
            Array.Sort(at, change, 0, count);
            return;
        }
        var packed = Scratch.Grow(ref t_scratch!.Packed, count);
        for (int i = 0; i < count; i++) packed[i] = (ulong)at[i] << ChangeBits | (uint)change[i];
        Array.Sort(packed, 0, count);
        for (int i = 0; i < count; i++) (at[i], change[i]) = (packed[i] >> ChangeBits, (int)(packed[i] & ((1 << ChangeBits) - 1)));
    }

    [ThreadStatic] private static Scratch? t_scratch;

    /// <summary>The build's scratch arrays, grown to the largest set built on the thread and kept.</summary>
    private sealed class Scratch
    {
        public UInt128[] At = [], Starts = [];
        public int[] Change = [], SegmentClass = [];
        public ulong[] Packed = [];

        public static T[] Grow<T>(ref T[] array, int length) =>
            array.Length >= length ? array : array = new T[Math.Max(length, array.Length * 2)];
    }

    private PolicyRuleSet(PolicyRuleSet rules, IReadOnlyList<int> policies)
    {
        Policies = [.. policies];
        (_starts, _segmentClass, _classOffsets, _first, _last) = (rules._starts, rules._segmentClass, rules._classOffsets, rules._first, rules._last);
    }

    /// <summary>
    /// The same compiled rules for policies numbered differently (an incremental compile reuses a set after other
    /// policies were added or removed, which renumbers the ids); the arrays are shared, both sets being immutable.
    /// </summary>
    public PolicyRuleSet WithPolicies(IReadOnlyList<int> policies) =>
        Policies.AsSpan().SequenceEqual(policies as int[] ?? [.. policies]) ? this : new PolicyRuleSet(this, policies);

    /// <summary>Ids of the policies that select the pods of this set in its direction.</summary>
    public int[] Policies { get; }

    /// <summary>Address segments (for diagnostics and benchmarks).</summary>
    public int SegmentCount => _starts.Length;

    /// <summary>The key of a protocol and destination port (0 for protocols without ports).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Key(byte protocol, ushort port) => (uint)protocol << 16 | port;

    /// <summary>True when some rule allows <paramref name="peer"/> on <paramref name="key"/>.</summary>
    public bool Allows(IpAddr peer, uint key)
    {
        var starts = _starts;
        UInt128 a = peer.Value;
        int lo = 0, hi = starts.Length - 1; // invariant: starts[lo] <= a (starts[0] == 0)
        while (lo < hi)
        {
            int mid = (lo + hi + 1) >> 1;
            if (starts[mid] <= a) lo = mid; else hi = mid - 1;
        }
        int cls = _segmentClass[lo];
        if (cls < 0) return false;
        int l = _classOffsets[cls], h = _classOffsets[cls + 1] - 1;
        // Last range whose First <= key, then check its end.
        while (l < h)
        {
            int mid = (l + h + 1) >> 1;
            if (_first[mid] <= key) l = mid; else h = mid - 1;
        }
        return _first[l] <= key && key <= _last[l];
    }

    /// <summary>
    /// Structurally equal: the same segments, each allowing the same ports, and the same policies (an incremental
    /// compile is checked against a full one with this).
    /// </summary>
    internal bool SameAs(PolicyRuleSet other) =>
        Policies.AsSpan().SequenceEqual(other.Policies) && _starts.AsSpan().SequenceEqual(other._starts)
        && _segmentClass.AsSpan().SequenceEqual(other._segmentClass) && _classOffsets.AsSpan().SequenceEqual(other._classOffsets)
        && _first.AsSpan().SequenceEqual(other._first) && _last.AsSpan().SequenceEqual(other._last);

    /// <summary>A fixed pseudo-random 64-bit value per port list (SplitMix64), XORed into the sweep's running hash.</summary>
    private static ulong Zobrist(int list)
    {
        ulong z = (ulong)(list + 1) * 0x9E37_79B9_7F4A_7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58_476D_1CE4_E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D0_49BB_1331_11EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>The class of the segment covered by the port lists <paramref name="active"/>, found by hash (checked member by member) or made.</summary>
    private static int ClassOf(List<int> active, ulong hash, List<IReadOnlyList<ProtocolPortRange>> lists,
        Dictionary<ulong, List<(int[] Lists, int Class)>> combinations, Dictionary<IReadOnlyList<ProtocolPortRange>, int> classes,
        List<List<ProtocolPortRange>> classRanges)
    {
        if (!combinations.TryGetValue(hash, out var candidates)) combinations.Add(hash, candidates = []);
        foreach (var (members, known) in candidates)
            if (members.AsSpan().SequenceEqual(CollectionsMarshal.AsSpan(active))) return known;

        var all = new List<ProtocolPortRange>();
        foreach (int list in active) all.AddRange(lists[list]);
        all.Sort((a, b) => a.First.CompareTo(b.First));
        var merged = new List<ProtocolPortRange>();
        foreach (var p in all)
        {
            if (merged.Count > 0 && p.First <= (ulong)merged[^1].Last + 1)
            {
                if (p.Last > merged[^1].Last) merged[^1] = merged[^1] with { Last = p.Last };
            }
            else merged.Add(p);
        }
        int cls = -1; // peers matched, but with an empty port list nothing is allowed
        if (merged.Count > 0 && !classes.TryGetValue(merged, out cls))
        {
            cls = classRanges.Count;
            classes.Add(merged, cls);
            classRanges.Add(merged);
        }
        candidates.Add(([.. active], cls));
        return cls;
    }

    /// <summary>Port lists compared by content.</summary>
    private sealed class PortListComparer : IEqualityComparer<IReadOnlyList<ProtocolPortRange>>
    {
        public static readonly PortListComparer Instance = new();

        public bool Equals(IReadOnlyList<ProtocolPortRange>? x, IReadOnlyList<ProtocolPortRange>? y)
        {
            if (ReferenceEquals(x, y)) return true;
            if (x is null || y is null || x.Count != y.Count) return false;
            for (int i = 0; i < x.Count; i++)
                if (x[i] != y[i]) return false;
            return true;
        }

        public int GetHashCode(IReadOnlyList<ProtocolPortRange> ranges)
        {
            var hash = new HashCode();
            for (int i = 0; i < ranges.Count; i++) hash.Add(ranges[i]); // no boxed enumerator per rule
            return hash.ToHashCode();
        }
    }
}
