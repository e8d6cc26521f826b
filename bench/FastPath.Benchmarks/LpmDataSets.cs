using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using FastPath.DataPlane.Routing;
using FastPath.DataPlane.Telemetry;

namespace FastPath.Benchmarks;

/// <summary>
/// Deterministic route tables and traffic for the LPM benchmarks, shared with the rte_lpm harness through files so
/// both sides look up exactly the same addresses in exactly the same table.
/// </summary>
public static class LpmDataSets
{
    public const int Lookups = 1 << 18;

    /// <summary>
    /// A BGP-like IPv4 table: ~60% /24, ~30% /16–/23, ~4% /8–/15, ~6% /25–/32 (the last mostly inside announced /24s,
    /// as more-specifics are), unique prefixes, next hops below 2^16.
    /// </summary>
    public static (uint Prefix, int Length, int NextHop)[] V4Routes(int count, int seed = 4)
    {
        var rng = new Random(seed);
        var seen = new HashSet<(uint, int)>();
        var routes = new List<(uint, int, int)>(count);
        while (routes.Count < count)
        {
            int roll = rng.Next(100);
            int length = roll < 60 ? 24 : roll < 90 ? rng.Next(16, 24) : roll < 94 ? rng.Next(8, 16) : rng.Next(25, 33);
            uint prefix = (uint)rng.NextInt64(0x0100_0000, 0xE000_0000); // unicast space, 1.0.0.0–223.255.255.255
            if (length > 24 && routes.Count > 0 && rng.Next(4) != 0)
            {
                var (p, l, _) = routes[rng.Next(routes.Count)]; // a more-specific under an existing route
                prefix = p | (prefix & ~Mask4(l));
            }
            prefix &= Mask4(length);
            if (seen.Add((prefix, length))) routes.Add((prefix, length, rng.Next(1 << 16)));
        }
        return routes.ToArray();
    }

    /// <summary>
    /// An IPv6 DFZ-like table under 2000::/3: ~15% /32 allocations, ~65% /48 and ~10% /49–/64 inside them,
    /// ~10% other lengths /29–/47.
    /// </summary>
    public static (UInt128 Prefix, int Length, int NextHop)[] V6Routes(int count, int seed = 6)
    {
        var rng = new Random(seed);
        var parents = new UInt128[Math.Max(1, count / 7)];
        for (int i = 0; i < parents.Length; i++)
            parents[i] = new UInt128(0x2000_0000_0000_0000UL | (ulong)rng.NextInt64(0, 1L << 29) << 32, 0);
        var seen = new HashSet<(UInt128, int)>();
        var routes = new List<(UInt128, int, int)>(count);
        while (routes.Count < count)
        {
            int roll = rng.Next(100);
            UInt128 parent = parents[rng.Next(parents.Length)];
            var random = new UInt128((ulong)rng.NextInt64(), (ulong)rng.NextInt64());
            int length = roll < 15 ? 32 : roll < 80 ? 48 : roll < 90 ? rng.Next(49, 65) : rng.Next(29, 48);
            UInt128 prefix = length <= 32 ? parent : parent | (random & ~Mask6(32));
            prefix &= Mask6(length);
            if (seen.Add((prefix, length))) routes.Add((prefix, length, rng.Next(1 << 16)));
        }
        return routes.ToArray();
    }

    /// <summary>
    /// Destinations inside the table: "Random" picks a route uniformly, "Zipf" by Zipf rank (s = 1.1) so a hot set of
    /// routes takes most packets, as flows to popular prefixes do; the host part is random either way.
    /// </summary>
    public static uint[] V4Addresses((uint Prefix, int Length, int NextHop)[] routes, string traffic, int seed = 44)
    {
        var rng = new Random(seed);
        var pick = Picker(routes.Length, traffic, rng);
        var a = new uint[Lookups];
        for (int i = 0; i < a.Length; i++)
        {
            var (p, l, _) = routes[pick()];
            a[i] = p | ((uint)rng.NextInt64() & ~Mask4(l));
        }
        return a;
    }

    public static UInt128[] V6Addresses((UInt128 Prefix, int Length, int NextHop)[] routes, string traffic, int seed = 66)
    {
        var rng = new Random(seed);
        var pick = Picker(routes.Length, traffic, rng);
        var a = new UInt128[Lookups];
        for (int i = 0; i < a.Length; i++)
        {
            var (p, l, _) = routes[pick()];
            a[i] = p | (new UInt128((ulong)rng.NextInt64(), (ulong)rng.NextInt64()) & ~Mask6(l));
        }
        return a;
    }

    private static Func<int> Picker(int n, string traffic, Random rng)
    {
        if (traffic != "Zipf") return () => rng.Next(n);
        var cdf = new double[n];
        double sum = 0;
        for (int k = 0; k < n; k++) cdf[k] = sum += 1 / Math.Pow(k + 1, 1.1);
        var rank = Enumerable.Range(0, n).ToArray();
        new Random(7).Shuffle(rank); // hot routes spread over the table, not clustered at low addresses
        return () =>
        {
            int k = Array.BinarySearch(cdf, rng.NextDouble() * sum);
            return rank[Math.Min(k < 0 ? ~k : k, n - 1)];
        };
    }

    public static uint Mask4(int l) => l == 0 ? 0 : uint.MaxValue << (32 - l);
    public static UInt128 Mask6(int l) => l == 0 ? UInt128.Zero : UInt128.MaxValue << (128 - l);

    /// <summary>
    /// The .NET side of bench/rte_lpm/compare.sh: reads the files <see cref="Export"/> wrote for <paramref name="n"/>
    /// routes and times LpmTable4 exactly as rte_lpm_bench times rte_lpm (warm-up, then 5 runs of 8 passes over
    /// the addresses, median and minimum thread CPU ns/lookup, checksum with misses as -1), so the two processes can alternate.
    /// </summary>
    public static int Time(string dir, int n)
    {
        var routes = new List<(uint, int, int)>();
        foreach (var line in File.ReadLines(Path.Combine(dir, $"v4-{n}.routes")))
        {
            var f = line.Split(' ');
            routes.Add((uint.Parse(f[0], CultureInfo.InvariantCulture), int.Parse(f[1], CultureInfo.InvariantCulture), int.Parse(f[2], CultureInfo.InvariantCulture)));
        }
        var sw = Stopwatch.StartNew();
        var table = LpmTable4.Build(routes);
        Console.WriteLine($"v4 {routes.Count} routes: LpmTable4 build {sw.Elapsed.TotalMilliseconds:F1} ms");
        foreach (var traffic in new[] { "Random", "Zipf" })
        {
            var bytes = File.ReadAllBytes(Path.Combine(dir, $"v4-{n}-{traffic}.addrs"));
            var addrs = MemoryMarshal.Cast<byte, uint>(bytes.AsSpan(0, bytes.Length / 4 / 64 * 64 * 4)).ToArray();
            var hops = new int[addrs.Length];
            Console.WriteLine($" {traffic}, {addrs.Length} addresses");
            TimeIt("fp-single", () => RunSingle(table, addrs), addrs.Length);
            TimeIt("fp-batch", () => RunBatch(table, addrs, hops), addrs.Length);
        }
        return 0;
    }

    // As rte_lpm_bench's run_single and run_bulk: the lookups, then the checksum of the results.
    private static long RunSingle(LpmTable4 table, uint[] addrs)
    {
        long s = 0;
        foreach (uint a in addrs) s += table.Lookup(a);
        return s;
    }

    private static long RunBatch(LpmTable4 table, uint[] addrs, int[] hops)
    {
        table.LookupBatch(addrs, hops);
        long s = 0;
        foreach (int h in hops) s += h;
        return s;
    }

    // CLOCK_THREAD_CPUTIME_ID, as rte_lpm_bench: CPU time per lookup stays meaningful when the process is descheduled.
    private static long ThreadCpuNs() => ThreadCpuClock.Now() is var t and >= 0 ? t : Stopwatch.GetTimestamp();

    private static void TimeIt(string label, Func<long> run, int n)
    {
        const int Reps = 5, Rounds = 8;
        var t = new double[Reps];
        // Warm-up: long enough for tiered compilation to reach its optimised (PGO) code, as a running node's would.
        long sum = run(), sink = 0;
        var warm = Stopwatch.StartNew();
        while (warm.ElapsedMilliseconds < 1000) sink += run();
        for (int r = 0; r < Reps; r++)
        {
            long t0 = ThreadCpuNs();
            for (int k = 0; k < Rounds; k++) sink += run();
            t[r] = (ThreadCpuNs() - t0) / ((double)n * Rounds);
        }
        Array.Sort(t);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  {label,-9} {t[Reps / 2],6:F2} ns/lookup  {1e3 / t[Reps / 2],7:F1} Mlookups/s  (min {t[0]:F2})  checksum {sum}{(sink == 42 ? " " : "")}"));
    }

    public static int Export(string dir)
    {
        Directory.CreateDirectory(dir);
        foreach (int n in new[] { 1_000, 100_000, 1_000_000 })
        {
            var routes = V4Routes(n);
            using (var w = new StreamWriter(Path.Combine(dir, $"v4-{n}.routes")))
                foreach (var (p, l, h) in routes) w.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{p} {l} {h}"));
            var sw = Stopwatch.StartNew();
            var table = LpmTable4.Build(routes);
            double buildMs = sw.Elapsed.TotalMilliseconds;
            Console.WriteLine($"v4 {n} routes: build {buildMs:F1} ms, {table.Tbl8GroupsUsed} tbl8 groups");
            foreach (var traffic in new[] { "Random", "Zipf" })
            {
                var addrs = V4Addresses(routes, traffic);
                File.WriteAllBytes(Path.Combine(dir, $"v4-{n}-{traffic}.addrs"), MemoryMarshal.AsBytes(addrs.AsSpan()).ToArray());
                long sum = 0;
                foreach (uint a in addrs) sum += table.Lookup(a);
                Console.WriteLine($"  {traffic}: checksum {sum}");
            }
        }

        // Rebuild costs for the 100k table: from scratch, and one incremental change after a snapshot was published
        // (which pays the copy-on-write of the 64 MiB tbl24).
        var r100k = V4Routes(100_000);
        for (int rep = 0; rep < 3; rep++)
        {
            var sw = Stopwatch.StartNew();
            var b = new LpmTable4.Builder();
            foreach (var (p, l, h) in r100k) b.Add(p, l, h);
            b.ToTable();
            double build = sw.Elapsed.TotalMilliseconds;
            sw.Restart();
            b.Add(0x0A00_0000, 8, 1);
            b.ToTable();
            double firstChange = sw.Elapsed.TotalMilliseconds;
            sw.Restart();
            for (int i = 0; i < 1000; i++) b.Add(0x0B00_0000 + ((uint)i << 8), 24, i);
            for (int i = 0; i < 1000; i++) b.Remove(0x0B00_0000 + ((uint)i << 8), 24);
            double thousand = sw.Elapsed.TotalMilliseconds;
            Console.WriteLine($"v4 100k build {build:F1} ms; add after snapshot (COW) {firstChange:F1} ms; 1000 adds + 1000 removes {thousand:F2} ms");
        }
        var r6 = V6Routes(100_000);
        for (int rep = 0; rep < 3; rep++)
        {
            var sw = Stopwatch.StartNew();
            var t6 = LpmTable6.Build(r6);
            Console.WriteLine($"v6 100k build {sw.Elapsed.TotalMilliseconds:F1} ms, {t6.Tbl8GroupsUsed} groups ({t6.Tbl8GroupsUsed / 1024} MiB)");
        }
        return 0;
    }
}
