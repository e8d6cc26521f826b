using CsCheck;
using FastPath.DataPlane.Routing;

namespace FastPath.Tests.Routing;

/// <summary>The IPv6 multibit trie against a linear scan where the longest matching prefix wins.</summary>
public class LpmTable6Tests
{
    internal static UInt128 Mask(int length) => length == 0 ? UInt128.Zero : UInt128.MaxValue << (128 - length);

    internal static int NaiveLookup(Dictionary<(UInt128, int), int> routes, UInt128 address)
    {
        int best = -1, bestLength = -1;
        foreach (var ((prefix, length), hop) in routes)
            if ((address & Mask(length)) == prefix && length > bestLength) { best = hop; bestLength = length; }
        return best;
    }

    internal static Dictionary<(UInt128, int), int> Canonical(IEnumerable<(UInt128 Prefix, int Length, int NextHop)> routes)
    {
        var d = new Dictionary<(UInt128, int), int>();
        foreach (var (p, l, h) in routes) d[(p & Mask(l), l)] = h;
        return d;
    }

    private static readonly Gen<UInt128> GenAddress = Gen.Select(Gen.ULong, Gen.ULong).Select((h, l) => new UInt128(h, l));

    /// <summary>
    /// Overlapping routes around a few bases: random prefixes, prefixes differing from a base only in the low 8, 16
    /// or 64 bits, and the base at every length 0..128 (nesting), plus ::/0 and a /128.
    /// </summary>
    internal static readonly Gen<(UInt128 Prefix, int Length, int NextHop)[]> GenRoutes =
        Gen.Select(GenAddress.Array[1, 4], Gen.Select(Gen.Int[0, 4], Gen.Int[0, 3], GenAddress, Gen.Int[0, 128], Gen.Int[0, 1000]).Array[0, 100])
            .Select((bases, raw) =>
            {
                var routes = new (UInt128, int, int)[raw.Length + 2];
                for (int i = 0; i < raw.Length; i++)
                {
                    var (mode, b, r, length, hop) = raw[i];
                    UInt128 bse = bases[b % bases.Length];
                    UInt128 prefix = mode switch
                    {
                        0 => r,
                        1 => bse ^ (r & 0xFF),
                        2 => bse ^ (r & 0xFFFF),
                        3 => bse ^ (r & ulong.MaxValue),
                        _ => bse,
                    };
                    routes[i] = (prefix & Mask(length), length, hop);
                }
                routes[^2] = (bases[0], 128, 4242);
                routes[^1] = (UInt128.Zero, 0, 7);
                return routes;
            });

    internal static UInt128[] Probes(IEnumerable<(UInt128 Prefix, int Length, int NextHop)> routes, int seed)
    {
        var list = new List<UInt128> { UInt128.Zero, UInt128.MaxValue };
        var rng = new Random(seed);
        foreach (var (p, l, _) in routes)
        {
            UInt128 first = p & Mask(l), last = first | ~Mask(l);
            list.Add(first); list.Add(last); list.Add(first - 1); list.Add(last + 1);
            list.Add(first + 1); list.Add(last - 1);
            list.Add(first | (new UInt128((ulong)rng.NextInt64(), (ulong)rng.NextInt64()) & ~Mask(l)));
        }
        for (int i = 0; i < 64; i++) list.Add(new UInt128((ulong)rng.NextInt64(), (ulong)rng.NextInt64()));
        return list.ToArray();
    }

    [Fact]
    public void LookupMatchesLinearScan()
    {
        Gen.Select(GenRoutes, Gen.Int).Sample((routes, seed) =>
        {
            var table = LpmTable6.Build(routes);
            var reference = Canonical(routes);
            foreach (var a in Probes(routes, seed))
                Assert.Equal(NaiveLookup(reference, a), table.Lookup(a));
        }, iter: 300);
    }

    [Fact]
    public void BatchLookupEqualsSingleLookup()
    {
        Gen.Select(GenRoutes, Gen.Int).Sample((routes, seed) =>
        {
            var table = LpmTable6.Build(routes);
            var probes = Probes(routes, seed);
            var batch = new int[probes.Length];
            table.LookupBatch(probes, batch);
            for (int i = 0; i < probes.Length; i++) Assert.Equal(table.Lookup(probes[i]), batch[i]);
        }, iter: 200);
    }

    [Fact]
    public void IncrementalChangesEqualRebuild()
    {
        var genOps = Gen.Select(Gen.Bool, Gen.Int[0, 1000], Gen.Int[0, 1000]).Array[1, 60];
        Gen.Select(GenRoutes, GenRoutes, genOps, Gen.Int).Sample((initial, extra, ops, seed) =>
        {
            var builder = new LpmTable6.Builder();
            foreach (var (p, l, h) in initial) builder.Add(p, l, h);
            var reference = Canonical(initial);
            var snapshot = builder.ToTable();
            var snapshotReference = new Dictionary<(UInt128, int), int>(reference);
            var pool = initial.Concat(extra).ToArray();
            foreach (var (remove, pick, hop) in ops)
            {
                var (p, l, _) = pool[pick % pool.Length];
                if (remove) Assert.Equal(reference.Remove((p & Mask(l), l)), builder.Remove(p, l));
                else { builder.Add(p, l, hop); reference[(p & Mask(l), l)] = hop; }
            }
            var incremental = builder.ToTable();
            var rebuilt = LpmTable6.Build(reference.Select(kv => (kv.Key.Item1, kv.Key.Item2, kv.Value)));
            Assert.Equal(reference.Count, incremental.RouteCount);
            foreach (var a in Probes(pool, seed))
            {
                int expected = NaiveLookup(reference, a);
                Assert.Equal(expected, incremental.Lookup(a));
                Assert.Equal(expected, rebuilt.Lookup(a));
                Assert.Equal(NaiveLookup(snapshotReference, a), snapshot.Lookup(a));
            }
        }, iter: 100);
    }

    [Fact]
    public void DefaultHostAndEmpty()
    {
        Assert.Equal(-1, LpmTable6.Build([]).Lookup(UInt128.One));
        UInt128 net = new(0x2001_0db8_0000_0000, 0);
        var t = LpmTable6.Build([(UInt128.Zero, 0, 1), (net, 32, 2), (net | 5, 128, 3), (net, 127, 4)]);
        Assert.Equal(1, t.Lookup(UInt128.MaxValue));
        Assert.Equal(2, t.Lookup(net | 0xFFFF));
        Assert.Equal(3, t.Lookup(net | 5));
        Assert.Equal(4, t.Lookup(net | 1));
        Assert.Equal(2, t.Lookup(net | 6));
    }
}
