using System.Runtime.CompilerServices;
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
        // boundaries gets the union of its covering rules' ports, interned as a class.
        var events = new List<(UInt128 At, int Rule, bool Open)>(rules.Count * 2);
        for (int r = 0; r < rules.Count; r++)
        {
            events.Add((rules[r].First, r, true));
            if (rules[r].Last != UInt128.MaxValue) events.Add((rules[r].Last + 1, r, false));
        }
        events.Sort((a, b) => a.At.CompareTo(b.At));

        var starts = new List<UInt128> { UInt128.Zero };
        var segmentClass = new List<int> { -1 };
        var classes = new Dictionary<string, int>(StringComparer.Ordinal);
        var classRanges = new List<List<ProtocolPortRange>>();
        var active = new SortedSet<int>();
        for (int e = 0; e < events.Count;)
        {
            UInt128 at = events[e].At;
            for (; e < events.Count && events[e].At == at; e++)
                if (events[e].Open) active.Add(events[e].Rule); else active.Remove(events[e].Rule);
            int cls = active.Count == 0 ? -1 : Intern(Union(rules, active), classes, classRanges);
            if (segmentClass[^1] == cls) continue; // same class as the segment before: extend it
            if (starts[^1] == at) segmentClass[^1] = cls; // only at address 0
            else { starts.Add(at); segmentClass.Add(cls); }
        }
        _starts = [.. starts];
        _segmentClass = [.. segmentClass];
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

    private static List<ProtocolPortRange> Union(IReadOnlyList<PeerRule> rules, SortedSet<int> active)
    {
        var all = new List<ProtocolPortRange>();
        foreach (int r in active) all.AddRange(rules[r].Ports);
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
        return merged;
    }

    private static int Intern(List<ProtocolPortRange> ranges, Dictionary<string, int> classes, List<List<ProtocolPortRange>> classRanges)
    {
        if (ranges.Count == 0) return -1; // peers matched, but with an empty port list nothing is allowed
        string key = string.Join(',', ranges.Select(r => $"{r.First}-{r.Last}"));
        if (!classes.TryGetValue(key, out int cls))
        {
            cls = classRanges.Count;
            classes.Add(key, cls);
            classRanges.Add(ranges);
        }
        return cls;
    }
}
