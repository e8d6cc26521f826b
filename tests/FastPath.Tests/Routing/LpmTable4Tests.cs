using CsCheck;
using FastPath.DataPlane.Routing;

namespace FastPath.Tests.Routing;

/// <summary>DIR-24-8 against a linear scan where the longest matching prefix wins.</summary>
public class LpmTable4Tests
{
    internal static uint Mask(int length) => length == 0 ? 0 : uint.MaxValue << (32 - length);

    /// <summary>The obviously-correct reference: every route checked, longest match wins.</summary>
    internal static int NaiveLookup(Dictionary<(uint, int), int> routes, uint address)
    {
        int best = -1, bestLength = -1;
        foreach (var ((prefix, length), hop) in routes)
            if ((address & Mask(length)) == prefix && length > bestLength) { best = hop; bestLength = length; }
        return best;
    }

    internal static Dictionary<(uint, int), int> Canonical(IEnumerable<(uint Prefix, int Length, int NextHop)> routes)
    {
        var d = new Dictionary<(uint, int), int>();
        foreach (var (p, l, h) in routes) d[(p & Mask(l), l)] = h;
        return d;
    }

    /// <summary>
    /// Route sets built around a few base addresses so they overlap: whole random prefixes, prefixes sharing the
    /// base's /24 (tbl8 groups with many routes), sharing its /16, and the base itself at every length (nesting).
    /// Lengths 0..32, so /0 and /32 come up often.
    /// </summary>
    internal static readonly Gen<(uint Prefix, int Length, int NextHop)[]> GenRoutes =
        Gen.Select(Gen.UInt.Array[1, 4], Gen.Select(Gen.Int[0, 3], Gen.Int[0, 3], Gen.UInt, Gen.Int[0, 32], Gen.Int[0, 1000]).Array[0, 120])
            .Select((bases, raw) =>
            {
                var routes = new (uint, int, int)[raw.Length + 2];
                for (int i = 0; i < raw.Length; i++)
                {
                    var (mode, b, r, length, hop) = raw[i];
                    uint bse = bases[b % bases.Length];
                    uint prefix = mode switch { 0 => r, 1 => bse ^ (r & 0xFF), 2 => bse ^ (r & 0xFFFF), _ => bse };
                    // Half of the shared-/24 routes are longer than /24, so they land in tbl8 groups.
                    if (mode == 1 && length < 25) length = 25 + (int)(r >> 29);
                    routes[i] = (prefix & Mask(length), length, hop);
                }
                routes[^2] = (bases[0], 32, 4242);
                routes[^1] = (0, 0, 7); // the default route
                return routes;
            });

    /// <summary>Random addresses plus each prefix's first and last address and the addresses just outside them.</summary>
    internal static uint[] Probes(IEnumerable<(uint Prefix, int Length, int NextHop)> routes, uint seed)
    {
        var list = new List<uint> { 0, uint.MaxValue };
        var rng = new Random((int)seed);
        foreach (var (p, l, _) in routes)
        {
            uint first = p & Mask(l), last = first | ~Mask(l);
            list.Add(first); list.Add(last); list.Add(first - 1); list.Add(last + 1);
            list.Add(first + 1); list.Add(last - 1);
            list.Add(first | ((uint)rng.Next() & ~Mask(l)));
        }
        for (int i = 0; i < 64; i++) list.Add((uint)rng.NextInt64());
        return list.ToArray();
    }

    [Fact]
    public void LookupMatchesLinearScan()
    {
        Gen.Select(GenRoutes, Gen.UInt).Sample((routes, seed) =>
        {
            var table = LpmTable4.Build(routes);
            var reference = Canonical(routes);
            foreach (uint a in Probes(routes, seed))
                Assert.Equal(NaiveLookup(reference, a), table.Lookup(a));
        }, iter: 40);
    }

    [Fact]
    public void BatchLookupEqualsSingleLookup()
    {
        Gen.Select(GenRoutes, Gen.UInt).Sample((routes, seed) =>
        {
            var table = LpmTable4.Build(routes);
            uint[] probes = Probes(routes, seed);
            var batch = new int[probes.Length];
            table.LookupBatch(probes, batch);
            for (int i = 0; i < probes.Length; i++) Assert.Equal(table.Lookup(probes[i]), batch[i]);
        }, iter: 20);
    }

    /// <summary>
    /// Incremental add/remove (with snapshots taken in between, exercising copy-on-write) ends in the same lookups as
    /// building the final route set from scratch; and an earlier snapshot does not see later changes.
    /// </summary>
    [Fact]
    public void IncrementalChangesEqualRebuild()
    {
        var genOps = Gen.Select(Gen.Bool, Gen.Int[0, 1000], Gen.UInt, Gen.Int[0, 32], Gen.Int[0, 1000]).Array[1, 80];
        Gen.Select(GenRoutes, GenRoutes, genOps, Gen.UInt).Sample((initial, extra, ops, seed) =>
        {
            var builder = new LpmTable4.Builder(initialTbl8Groups: 1); // forces pool growth
            foreach (var (p, l, h) in initial) builder.Add(p, l, h);
            var reference = Canonical(initial);
            var snapshot = builder.ToTable();
            var snapshotReference = new Dictionary<(uint, int), int>(reference);

            var pool = initial.Concat(extra).ToArray();
            foreach (var (remove, pick, r, length, hop) in ops)
            {
                var (p, l, _) = pool[pick % pool.Length];
                if (remove)
                {
                    Assert.Equal(reference.Remove((p & Mask(l), l)), builder.Remove(p, l));
                }
                else
                {
                    // Either re-add a known prefix with a new hop, or a fresh one.
                    if (r % 3 == 0) { p = r; l = length; }
                    builder.Add(p, l, hop);
                    reference[(p & Mask(l), l)] = hop;
                }
                if (r % 17 == 0) builder.ToTable(); // a snapshot mid-way: the next change must copy
            }

            var incremental = builder.ToTable();
            var rebuilt = LpmTable4.Build(reference.Select(kv => (kv.Key.Item1, kv.Key.Item2, kv.Value)));
            Assert.Equal(reference.Count, incremental.RouteCount);
            var probes = Probes(pool.Concat(reference.Select(kv => (kv.Key.Item1, kv.Key.Item2, kv.Value))), seed);
            foreach (uint a in probes)
            {
                int expected = NaiveLookup(reference, a);
                Assert.Equal(expected, rebuilt.Lookup(a));
                Assert.Equal(expected, incremental.Lookup(a));
                Assert.Equal(NaiveLookup(snapshotReference, a), snapshot.Lookup(a));
            }
            // Deletes recycle tbl8 groups: the incremental table never holds more groups than a fresh build needs.
            Assert.Equal(rebuilt.Tbl8GroupsUsed, incremental.Tbl8GroupsUsed);
        }, iter: 25);
    }

    /// <summary>
    /// Copy-on-write by page: a snapshot taken after every few of many random changes keeps answering exactly as the
    /// route set it was taken from (against the linear scan), whatever was written to the builder's later pages.
    /// </summary>
    [Fact]
    public void EverySnapshotStaysUnchangedByLaterWrites()
    {
        var genOps = Gen.Select(Gen.Bool, Gen.Int[0, 1000], Gen.UInt, Gen.Int[0, 32], Gen.Int[0, 1000]).Array[20, 200];
        Gen.Select(GenRoutes, genOps, Gen.UInt).Sample((initial, ops, seed) =>
        {
            var builder = new LpmTable4.Builder(initialTbl8Groups: 1);
            foreach (var (p, l, h) in initial) builder.Add(p, l, h);
            var reference = Canonical(initial);
            var snapshots = new List<(LpmTable4 Table, Dictionary<(uint, int), int> Routes)> { (builder.ToTable(), new(reference)) };
            var touched = new List<(uint, int, int)>(initial);
            foreach (var (remove, pick, r, length, hop) in ops)
            {
                var (p, l, _) = touched[pick % touched.Count];
                if (remove) Assert.Equal(reference.Remove((p & Mask(l), l)), builder.Remove(p, l));
                else
                {
                    // A fresh prefix, often near a known one so tbl8 groups fill, split and fold back.
                    if (r % 2 == 0) { p = r % 4 == 0 ? r : p ^ (r & 0xFF); l = r % 4 == 0 ? length : Math.Max(l, 25 + (int)(r >> 29)); }
                    builder.Add(p, l, hop);
                    reference[(p & Mask(l), l)] = hop;
                    touched.Add((p & Mask(l), l, hop));
                }
                if (r % 5 == 0) snapshots.Add((builder.ToTable(), new(reference)));
            }
            snapshots.Add((builder.ToTable(), new(reference)));
            uint[] probes = Probes(touched, seed);
            var batch = new int[probes.Length];
            // Each table answers the same through its page directory and, once flattened, through the flat copy (the
            // builder flattens its latest table in the background, so some may be flat already).
            for (int pass = 0; pass < 2; pass++)
            {
                foreach (var (table, routes) in snapshots)
                {
                    if (pass == 1) { table.Flatten(); Assert.True(table.IsFlat); }
                    table.LookupBatch(probes, batch);
                    for (int i = 0; i < probes.Length; i++)
                    {
                        int expected = NaiveLookup(routes, probes[i]);
                        Assert.Equal(expected, table.Lookup(probes[i]));
                        Assert.Equal(expected, batch[i]);
                    }
                }
            }
        }, iter: 12);
    }

    /// <summary>A /24 added after a snapshot copies the one tbl24 page under it; the others stay shared.</summary>
    [Fact]
    public void AChangeCopiesOnlyThePagesItWrites()
    {
        var builder = new LpmTable4.Builder();
        builder.Add(0x0A00_0000, 8, 1);
        var before = builder.ToTable();
        builder.Add(0x0A01_0200, 24, 2);
        var after = builder.ToTable();
        var changed = Enumerable.Range(0, before.Tbl24Pages.PageCount).Where(p => !after.Tbl24Pages.SharesPage(before.Tbl24Pages, p)).ToList();
        Assert.Equal([(int)(0x0A01_0200u >> (8 + LpmPages.PageBits))], changed);
        Assert.Equal(1, before.Lookup(0x0A01_0203));
        Assert.Equal(2, after.Lookup(0x0A01_0203));

        // A /8 spans 2^16 /24s; replacing its next hop copies exactly the pages they fill.
        builder.Add(0x0A00_0000, 8, 3);
        var third = builder.ToTable();
        Assert.Equal((1 << 16) / LpmPages.PageSize, Enumerable.Range(0, third.Tbl24Pages.PageCount).Count(p => !third.Tbl24Pages.SharesPage(after.Tbl24Pages, p)));
        Assert.Equal(1, before.Lookup(0x0A7F_0000));
        Assert.Equal(3, third.Lookup(0x0A7F_0000));
        Assert.Equal(2, third.Lookup(0x0A01_0203));
    }

    /// <summary>
    /// A table built from scratch reads its contiguous base pages as the flat tbl24 with no copy; one taken after a
    /// page was copied starts paged, and flattening it copies its own pages, not the builder's later writes.
    /// </summary>
    [Fact]
    public void ATableIsFlatWhenItsPagesAreContiguousAndAfterFlatten()
    {
        var builder = new LpmTable4.Builder();
        builder.Add(0x0A00_0000, 8, 1);
        var first = builder.ToTable();
        Assert.True(first.IsFlat); // at once: ToTable queued no copy for it

        builder.Add(0x0A01_0200, 24, 2);
        var second = builder.ToTable();
        Assert.False(second.Tbl24Pages.SharesPage(first.Tbl24Pages, 0x0A01_0200 >> (8 + LpmPages.PageBits)));
        builder.Add(0x0A01_0200, 24, 3); // written to the builder's copy of that page, after the snapshot
        second.Flatten();
        Assert.True(second.IsFlat);
        var probes = new uint[] { 0x0A01_0203, 0x0A01_0303, 0x0B00_0000, 0x0A01_02FF };
        var batch = new int[probes.Length];
        second.LookupBatch(probes, batch);
        Assert.Equal([2, 1, -1, 2], batch);
        Assert.Equal(2, second.Lookup(0x0A01_0203));
        Assert.Equal(1, first.Lookup(0x0A01_0203));
        Assert.Equal(3, builder.ToTable().Lookup(0x0A01_0203));
    }

    [Fact]
    public void RemovingEveryRouteLeavesAnEmptyTable()
    {
        Gen.Select(GenRoutes, Gen.UInt).Sample((routes, seed) =>
        {
            var b = new LpmTable4.Builder();
            foreach (var (p, l, h) in routes) b.Add(p, l, h);
            foreach (var (p, l, _) in routes) b.Remove(p, l);
            var t = b.ToTable();
            Assert.Equal(0, t.RouteCount);
            Assert.Equal(0, t.Tbl8GroupsUsed);
            foreach (uint a in Probes(routes, seed)) Assert.Equal(-1, t.Lookup(a));
        }, iter: 15);
    }

    [Fact]
    public void HostRouteDefaultRouteAndEmptyTable()
    {
        Assert.Equal(-1, LpmTable4.Build([]).Lookup(0x0A00_0001));
        var t = LpmTable4.Build([(0, 0, 1), (0x0A00_0000, 8, 2), (0x0A01_0200, 24, 3), (0x0A01_0203, 32, 4), (0x0A01_0280, 25, 5)]);
        Assert.Equal(1, t.Lookup(0x0B00_0000));
        Assert.Equal(2, t.Lookup(0x0AFF_FFFF));
        Assert.Equal(3, t.Lookup(0x0A01_0200));
        Assert.Equal(4, t.Lookup(0x0A01_0203));
        Assert.Equal(3, t.Lookup(0x0A01_0204));
        Assert.Equal(5, t.Lookup(0x0A01_02FF));
        Assert.Equal(LpmTable4.MaxNextHop, LpmTable4.Build([(0, 0, LpmTable4.MaxNextHop)]).Lookup(1));
    }
}
