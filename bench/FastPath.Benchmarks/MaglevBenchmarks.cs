using BenchmarkDotNet.Attributes;
using FastPath.DataPlane.Services;

namespace FastPath.Benchmarks;

/// <summary>
/// Maglev lookup, ns per flow over a batch of random flow hashes. Peer in the same class: the same slot computed with
/// Lemire's exact 64-bit "fastmod" (Lemire, Kaser, Kurz, "Faster remainder by direct computation", 2019) instead of
/// the division in <see cref="MaglevTable.Lookup"/>, to decide whether the division is worth replacing.
/// </summary>
[MemoryDiagnoser]
public class MaglevLookupBenchmarks
{
    private const int Flows = 4096;
    private MaglevTable _table = null!;
    private ulong[] _hashes = null!;
    private ushort[] _slots = null!;
    private ulong _fastModLo, _fastModHi;

    [Params(16381, 131071)]
    public int TableSize { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _table = MaglevTable.Build(MaglevStats.Backends(100), TableSize);
        _slots = _table.Slots.ToArray();
        var rng = new Random(7);
        _hashes = new ulong[Flows];
        for (int i = 0; i < Flows; i++) _hashes[i] = (ulong)rng.NextInt64() ^ ((ulong)rng.Next() << 63);
        UInt128 m = UInt128.MaxValue / (uint)TableSize + 1;
        _fastModLo = (ulong)m;
        _fastModHi = (ulong)(m >> 64);
        foreach (ulong h in _hashes)
            if (FastMod(h, _fastModLo, _fastModHi, (uint)TableSize) != h % (ulong)TableSize) throw new InvalidOperationException("fastmod disagrees with %");
    }

    [Benchmark(OperationsPerInvoke = Flows, Baseline = true)]
    public int Lookup()
    {
        var t = _table;
        int x = 0;
        foreach (ulong h in _hashes) x ^= t.Lookup(h);
        return x;
    }

    [Benchmark(OperationsPerInvoke = Flows)]
    public int LookupFastMod()
    {
        ushort[] slots = _slots;
        ulong lo = _fastModLo, hi = _fastModHi;
        uint d = (uint)slots.Length;
        int x = 0;
        foreach (ulong h in _hashes) x ^= slots[(int)FastMod(h, lo, hi, d)];
        return x;
    }

    /// <summary>a mod d with M = ⌊(2¹²⁸ − 1)/d⌋ + 1: (M·a mod 2¹²⁸)·d / 2¹²⁸, exact for 64-bit a and 32-bit d.</summary>
    private static ulong FastMod(ulong a, ulong mLo, ulong mHi, uint d)
    {
        ulong lowHi = Math.BigMul(mLo, a, out ulong lowLo) + mHi * a;
        ulong carryIn = Math.BigMul(lowLo, d, out _);
        ulong high = Math.BigMul(lowHi, d, out ulong mid);
        ulong sum = mid + carryIn;
        return high + (sum < carryIn ? 1UL : 0UL);
    }
}

/// <summary>
/// Maglev table build time on the control path. Peer in the same class: a Cilium-style build (pkg/maglev
/// getPermutation + GetLookupTable) that materialises each backend's full M-entry permutation row before filling,
/// written here single-threaded with its permutation buffer preallocated as Cilium keeps it across calls. Ours keeps
/// only (offset, skip) per backend, as Katran's MaglevBase does.
/// </summary>
[MemoryDiagnoser]
public class MaglevBuildBenchmarks
{
    private MaglevBackend[] _backends = null!;
    private readonly MaglevTable.Builder _builder = new();
    private uint[] _permutation = null!;

    [Params(10, 100, 1000)]
    public int Backends { get; set; }

    [Params(16381, 65537, 131071)]
    public int TableSize { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _backends = MaglevStats.Backends(Backends);
        _permutation = new uint[(long)Backends * TableSize];
        if (!CiliumStyle().AsSpan().SequenceEqual(OffsetSkip().Slots.ToArray().Select(s => (int)s).ToArray())) throw new InvalidOperationException("peer builds a different table");
    }

    [Benchmark(Baseline = true)]
    public MaglevTable OffsetSkip() => _builder.Build(_backends, TableSize);

    [Benchmark]
    public int[] CiliumStyle()
    {
        int m = TableSize;
        int n = _backends.Length;
        // Same order and hashes as MaglevTable so both build the same table; the difference is the M-entry rows.
        var sorted = _backends.OrderBy(b => b.Identity).ToArray();
        var perm = _permutation;
        for (int i = 0; i < n; i++)
        {
            var (h1, h2) = MaglevBackend.PermutationHashes(sorted[i].Identity, MaglevTable.DefaultSeed);
            ulong offset = h1 % (ulong)m, skip = h2 % (ulong)(m - 1) + 1;
            long row = (long)i * m;
            perm[row] = (uint)offset;
            for (int j = 1; j < m; j++) perm[row + j] = (uint)((perm[row + j - 1] + skip) % (ulong)m);
        }

        var next = new int[n];
        var entry = new int[m];
        Array.Fill(entry, -1);
        for (int filled = 0; filled < m; filled++)
        {
            int i = filled % n;
            long row = (long)i * m;
            uint c = perm[row + next[i]];
            while (entry[c] >= 0) c = perm[row + ++next[i]];
            entry[c] = sorted[i].Index;
            next[i]++;
        }
        return entry;
    }
}
