using System.Runtime.CompilerServices;

namespace FastPath.DataPlane.Routing;

/// <summary>
/// IPv6 longest-prefix match: a multibit trie with a 16-bit direct first level (tbl16, 256 KiB, stays in L2) and then
/// 8-bit strides of 256-entry groups, the structure of DPDK <c>lib/lpm/rte_lpm6.c</c> (which starts with a 24-bit
/// level) built by controlled prefix expansion (Srinivasan and Varghese, "Fast Address Lookups Using Controlled
/// Prefix Expansion", 1999). Addresses are the <see cref="Packets.IpAddr.Value"/> representation.
/// </summary>
/// <remarks>
/// Why this structure: it shares the entry format, builder and batch shape with <see cref="LpmTable4"/>, a /48 costs
/// five dependent loads (tbl16 + four groups) with no hashing, and the first level fits in L2. A 16-bit rather than
/// rte_lpm6's 24-bit first level because the whole IPv6 DFZ lives under 2000::/3: a 64 MiB tbl24 would be almost
/// empty and push the groups out of cache. Waldvogel's binary search on lengths needs ~log2(distinct lengths) ≈ 5–6
/// hash probes, each a likely miss, plus marker bookkeeping on update; Poptrie would be smaller (popcount-compressed
/// leaves) and is the next step: measured on the 100k-route benchmark table (mostly /48 under /32s) this trie needs
/// 134,365 groups (131 MiB), builds in 120–260 ms, and looks up in 95–360 ns random / 54–130 ns Zipf (batch / single,
/// two BenchmarkDotNet short runs on a loaded 2-core box), against 620–910 ns for a Dictionary per length. The
/// groups are ~1 KiB per /48, so random lookups miss cache and TLB at every level; that, not the instruction count,
/// is the limit.
/// Entry (4 bytes): bit 31 extended (low 24 bits are a group), bit 30 valid, bits 0–23 next hop as a signed 24-bit
/// value, 0xFFFFFF when no route, so the result is a sign-extending shift. No depth field: the table is always built
/// from the sorted route set (shortest first), so a longer route simply overwrites; incremental changes go to the
/// builder's route set and <see cref="Builder.ToTable"/> re-expands, off the packet path.
/// </remarks>
[SkipLocalsInit]
public sealed class LpmTable6
{
    public const int MaxNextHop = 0x7F_FFFF;

    private const uint Extended = 0x8000_0000;
    private const uint Valid = 0x4000_0000;
    private const uint NoRoute = 0x00FF_FFFF;
    private const int GroupSize = 256;

    private readonly uint[] _tbl16;
    private readonly uint[] _tbl8;

    private LpmTable6(uint[] tbl16, uint[] tbl8, int routeCount, int groups)
    {
        _tbl16 = tbl16;
        _tbl8 = tbl8;
        RouteCount = routeCount;
        Tbl8GroupsUsed = groups;
    }

    public int RouteCount { get; }

    /// <summary>256-entry groups in use, 1 KiB each.</summary>
    public int Tbl8GroupsUsed { get; }

    public static LpmTable6 Build(IEnumerable<(UInt128 Prefix, int Length, int NextHop)> routes)
    {
        var b = new Builder();
        foreach (var (prefix, length, nextHop) in routes) b.Add(prefix, length, nextHop);
        return b.ToTable();
    }

    /// <summary>The next hop of the longest prefix holding <paramref name="address"/>, or -1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Lookup(UInt128 address)
    {
        uint[] tbl8 = _tbl8;
        ulong hi = (ulong)(address >> 64), lo = (ulong)address;
        uint e = _tbl16[(int)(hi >> 48)];
        // Slide a 128-bit window left one stride per level; the next stride is always its top byte.
        hi = hi << 16 | lo >> 48;
        lo <<= 16;
        while ((int)e < 0)
        {
            e = tbl8[((e & 0xFF_FFFF) << 8) | (uint)(hi >> 56)];
            hi = hi << 8 | lo >> 56;
            lo <<= 8;
        }
        return (int)(e << 8) >> 8;
    }

    /// <summary>
    /// Looks up eight addresses per step, walking all eight one level at a time so each level's loads (mostly
    /// cache misses into the groups) overlap, as in <see cref="LpmTable4.LookupBatch"/>.
    /// </summary>
    public void LookupBatch(ReadOnlySpan<UInt128> addresses, Span<int> nextHops)
    {
        if (nextHops.Length < addresses.Length) ThrowShortOutput();
        uint[] tbl16 = _tbl16, tbl8 = _tbl8;
        Span<ulong> hi = stackalloc ulong[8];
        Span<ulong> lo = stackalloc ulong[8];
        Span<uint> e = stackalloc uint[8];
        int n = addresses.Length, i = 0;
        for (; i + 8 <= n; i += 8)
        {
            uint any = 0;
            for (int k = 0; k < 8; k++)
            {
                UInt128 a = addresses[i + k];
                ulong h = (ulong)(a >> 64), l = (ulong)a;
                uint x = tbl16[(int)(h >> 48)];
                hi[k] = h << 16 | l >> 48;
                lo[k] = l << 16;
                e[k] = x;
                any |= x;
            }
            while ((int)any < 0)
            {
                any = 0;
                for (int k = 0; k < 8; k++)
                {
                    uint x = e[k];
                    if ((int)x >= 0) continue;
                    ulong h = hi[k];
                    x = tbl8[((x & 0xFF_FFFF) << 8) | (uint)(h >> 56)];
                    hi[k] = h << 8 | lo[k] >> 56;
                    lo[k] <<= 8;
                    e[k] = x;
                    any |= x;
                }
            }
            for (int k = 0; k < 8; k++) nextHops[i + k] = (int)(e[k] << 8) >> 8;
        }
        for (; i < n; i++) nextHops[i] = Lookup(addresses[i]);
    }

    private static void ThrowShortOutput() => throw new ArgumentException("nextHops is shorter than addresses");

    /// <summary>
    /// The route set; <see cref="ToTable"/> expands it into a fresh trie (shortest prefixes first, so every write
    /// overwrites a less specific one). Add/Remove are O(1) on the set, the expansion is paid once per snapshot.
    /// </summary>
    public sealed class Builder
    {
        private readonly Dictionary<(UInt128 Prefix, int Length), int> _routes = new();

        public int Count => _routes.Count;

        public void Add(UInt128 prefix, int length, int nextHop)
        {
            if ((uint)length > 128) throw new ArgumentOutOfRangeException(nameof(length), length, "IPv6 prefix length is 0..128");
            if ((uint)nextHop > MaxNextHop) throw new ArgumentOutOfRangeException(nameof(nextHop), nextHop, $"next hop is 0..{MaxNextHop}");
            _routes[(prefix & Mask(length), length)] = nextHop;
        }

        public bool Remove(UInt128 prefix, int length) =>
            (uint)length <= 128 && _routes.Remove((prefix & Mask(length), length));

        public bool Contains(UInt128 prefix, int length) =>
            (uint)length <= 128 && _routes.ContainsKey((prefix & Mask(length), length));

        public IEnumerable<(UInt128 Prefix, int Length, int NextHop)> Routes()
        {
            foreach (var ((p, l), h) in _routes) yield return (p, l, h);
        }

        internal static UInt128 Mask(int length) => length == 0 ? UInt128.Zero : UInt128.MaxValue << (128 - length);

        public LpmTable6 ToTable()
        {
            var sorted = new (UInt128 Prefix, int Length, int NextHop)[_routes.Count];
            int c = 0;
            foreach (var ((p, l), h) in _routes) sorted[c++] = (p, l, h);
            Array.Sort(sorted, static (x, y) => x.Length != y.Length ? x.Length.CompareTo(y.Length) : x.Prefix.CompareTo(y.Prefix));

            var tbl16 = GC.AllocateUninitializedArray<uint>(1 << 16);
            Array.Fill(tbl16, NoRoute);
            var tbl8 = new uint[Math.Max(GroupSize, _routes.Count / 2 * GroupSize)];
            int groups = 0;

            foreach (var (prefix, length, nextHop) in sorted)
            {
                uint value = Valid | ((uint)nextHop & 0xFF_FFFF);
                ulong hi = (ulong)(prefix >> 64), lo = (ulong)prefix;
                if (length <= 16)
                {
                    int first = (int)(hi >> 48);
                    tbl16.AsSpan(first, 1 << (16 - length)).Fill(value);
                    continue;
                }
                // Walk (and extend) down to the level whose stride holds the last prefix bit. The parent slot is an
                // index (tbl16 when parentGroup is -1), not a ref: tbl8 may be reallocated while we walk.
                int parentGroup = -1, parentIndex = (int)(hi >> 48);
                hi = hi << 16 | lo >> 48;
                lo <<= 16;
                int levelEnd = 24; // prefix bits covered once this level's stride is consumed
                while (true)
                {
                    uint e = parentGroup < 0 ? tbl16[parentIndex] : tbl8[parentGroup * GroupSize + parentIndex];
                    int g;
                    if ((int)e < 0) g = (int)(e & 0xFF_FFFF);
                    else
                    {
                        if ((groups + 1) * GroupSize > tbl8.Length) Array.Resize(ref tbl8, tbl8.Length * 2);
                        g = groups++;
                        tbl8.AsSpan(g * GroupSize, GroupSize).Fill(e); // inherit the covering route
                        if (parentGroup < 0) tbl16[parentIndex] = Extended | (uint)g;
                        else tbl8[parentGroup * GroupSize + parentIndex] = Extended | (uint)g;
                    }
                    int index = (int)(hi >> 56);
                    if (length <= levelEnd)
                    {
                        // Controlled prefix expansion: the route fills 2^(levelEnd - length) entries of this group.
                        // None of them can be extended yet: only a longer route extends, and those come later.
                        tbl8.AsSpan(g * GroupSize + index, 1 << (levelEnd - length)).Fill(value);
                        break;
                    }
                    parentGroup = g;
                    parentIndex = index;
                    hi = hi << 8 | lo >> 56;
                    lo <<= 8;
                    levelEnd += 8;
                }
            }
            if (groups >= 1 << 24) throw new InvalidOperationException("more than 2^24 groups");
            return new LpmTable6(tbl16, tbl8, _routes.Count, groups);
        }
    }
}
