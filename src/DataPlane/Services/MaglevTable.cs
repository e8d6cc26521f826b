using System.Runtime.CompilerServices;

namespace FastPath.DataPlane.Services;

/// <summary>
/// Maglev consistent-hashing lookup table (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load
/// Balancer", NSDI 2016, §3.4): a prime-sized array of backend indices filled so that each backend owns ~M/N slots and
/// removing or adding one backend moves few other slots. Built on the control path, immutable afterwards, so the packet
/// path reads it without locks; a new backend set means a new table published by swapping one reference (the snapshot
/// swap of <c>ForwardingSnapshot</c>), as Cilium's agent computes tables that the datapath only looks up.
/// </summary>
public sealed class MaglevTable
{
    /// <summary>Cilium's default. The paper (§3.4) picks M > 100·N so backends' shares differ by at most ~1 %.</summary>
    public const int DefaultSize = 16381;

    public const int MinSize = 251;

    /// <summary>Largest size accepted (Cilium's largest option); 512 KiB of slots.</summary>
    public const int MaxSize = 131071;

    /// <summary>
    /// Slots per backend <see cref="SizeFor"/> aims at: the paper (§3.4) and Cilium's documentation ask for M > 100·N,
    /// which keeps the backends' shares within ~1 % of each other and the disruption of a backend change near 1/N.
    /// </summary>
    public const int DefaultSlotsPerBackend = 100;

    /// <summary>
    /// The sizes <see cref="SizeFor"/> chooses from: Cilium's supported maglev.tableSize values (primes just below
    /// powers of two), so a Service's table grows by doubling as its backends do.
    /// </summary>
    public static ReadOnlySpan<int> SizeClasses => [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071];

    /// <summary>
    /// The table size for a Service with <paramref name="backends"/> backends: the smallest of <see cref="SizeClasses"/>
    /// with at least <paramref name="slotsPerBackend"/>·N slots, and never more than <paramref name="maxSize"/> (a prime;
    /// a Service with more backends than maxSize/slotsPerBackend gets maxSize, as every Service does with a fixed M).
    /// <paramref name="slotsPerBackend"/> 0 gives every Service <paramref name="maxSize"/>. A function of N alone, so
    /// every node picks the same size for the same backend set and builds the same table.
    /// </summary>
    public static int SizeFor(int backends, int maxSize = DefaultSize, int slotsPerBackend = DefaultSlotsPerBackend)
    {
        if (slotsPerBackend <= 0) return maxSize;
        long wanted = (long)Math.Max(1, backends) * slotsPerBackend;
        foreach (int size in SizeClasses)
            if (size >= wanted || size >= maxSize) return Math.Min(size, maxSize);
        return maxSize;
    }

    /// <summary>Fixed so every node places a backend identically; changing it reshuffles every table.</summary>
    public const ulong DefaultSeed = 0x4D61676C65763031UL; // "Maglev01"

    /// <summary>Largest backend index: slots are 2 bytes and <see cref="NoBackend"/> marks an empty one.</summary>
    public const int MaxBackendIndex = ushort.MaxValue - 1;

    private const ushort NoBackend = ushort.MaxValue;

    // 2-byte slots (issue 20): at the default M a table is 32 KiB instead of 64 KiB, so 10,000 Services hold 328 MB
    // of tables instead of 655 MB; a Service never has 65,535 endpoints (EndpointSlices hold ≤ 1,000 each).
    private readonly ushort[] _slots;

    private MaglevTable(ushort[] slots) => _slots = slots;

    /// <summary>Number of slots (a prime).</summary>
    public int Size => _slots.Length;

    /// <summary>Bytes the slots take (what a Service's table costs in memory).</summary>
    public int Bytes => _slots.Length * sizeof(ushort);

    /// <summary>Backend index per slot (<see cref="ushort.MaxValue"/> in an empty table), for tests and measurements.</summary>
    public ReadOnlySpan<ushort> Slots => _slots;

    /// <summary>The slot array itself, for <see cref="ServiceTable"/>: a new connection reads it without a hop through
    /// this object (<see cref="ServiceTable.PrefetchOpen"/>).</summary>
    internal ushort[] SlotArray => _slots;

    /// <summary>
    /// The backend index for a flow: slot <c>flowHash % Size</c>, or -1 when the table has no backends (empty tables hold
    /// -1 in every slot, so there is no branch here). O(1), no allocation.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Lookup(ulong flowHash) => Lookup(_slots, flowHash);

    /// <summary><see cref="Lookup(ulong)"/> on a table's <see cref="SlotArray"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int Lookup(ushort[] slots, ulong flowHash) =>
        // NoBackend (0xFFFF) + 1 wraps to 0, so an empty slot reads as -1 without a branch.
        ((slots[(int)(flowHash % (ulong)slots.Length)] + 1) & 0xFFFF) - 1;

    /// <summary>The slot <see cref="Lookup"/> reads for a flow (traces name it).</summary>
    public int SlotOf(ulong flowHash) => (int)(flowHash % (ulong)_slots.Length);

    /// <summary>Builds a table with a one-off <see cref="Builder"/>; control path.</summary>
    public static MaglevTable Build(ReadOnlySpan<MaglevBackend> backends, int tableSize = DefaultSize, ulong seed = DefaultSeed) =>
        new Builder().Build(backends, tableSize, seed);

    /// <summary>True for primes; trial division is plenty for sizes ≤ <see cref="MaxSize"/>.</summary>
    public static bool IsPrime(int n)
    {
        if (n < 2) return false;
        if (n % 2 == 0) return n == 2;
        for (int d = 3; d <= n / d; d += 2)
            if (n % d == 0) return false;
        return true;
    }

    /// <summary>
    /// Reusable build scratch: the control plane keeps one and rebuilds tables without allocating per backend or per
    /// slot (only the final immutable slot array is new). Following Katran's MaglevBase/MaglevHashV2, a backend is only
    /// its (offset, skip) pair — 8 bytes — never the M-entry permutation row that the paper's pseudocode (and Cilium's
    /// pkg/maglev) materialises, which for N = 1000, M = 131071 would be 131 M entries. Not thread-safe; one per builder thread.
    /// </summary>
    public sealed class Builder
    {
        private MaglevBackend[] _sorted = [];
        private ulong[] _keys = [];
        private int[] _position = []; // current permutation element of backend i: (offset + next·skip) mod M
        private int[] _skip = [];
        private int[] _credit = []; // Katran V2 weight credit

        public MaglevTable Build(ReadOnlySpan<MaglevBackend> backends, int tableSize = DefaultSize, ulong seed = DefaultSeed)
        {
            if (tableSize < MinSize || tableSize > MaxSize || !IsPrime(tableSize))
                throw new ArgumentException($"Maglev table size {tableSize} must be a prime between {MinSize} and {MaxSize} (§3.4: a prime M makes every skip generate a full permutation).", nameof(tableSize));

            int n = backends.Length;
            var slots = Pipeline.LongLived.Array<ushort>(tableSize); // filled below in both cases
            if (n == 0)
            {
                Array.Fill(slots, NoBackend);
                return new MaglevTable(slots);
            }

            EnsureCapacity(n);
            var sorted = _sorted.AsSpan(0, n);
            backends.CopyTo(sorted);
            // Input order must not matter: the turn order of the fill decides ties, so fix it by identity. Every node
            // then builds a byte-identical table from the same set (§3.4 and Cilium both rely on a stable order).
            // Sorting by a parallel key span uses the primitive comparer: no boxed IComparer, no delegate.
            var keys = _keys.AsSpan(0, n);
            for (int i = 0; i < n; i++) keys[i] = sorted[i].Identity;
            keys.Sort(sorted);

            int maxWeight = 0;
            for (int i = 0; i < n; i++)
            {
                ref readonly var b = ref sorted[i];
                if (b.Weight < 1) throw new ArgumentException($"Maglev backend {b.Index} (identity {b.Identity:x16}) has weight {b.Weight}; weights must be ≥ 1 (leave drained backends out).", nameof(backends));
                if (b.Index < 0 || b.Index > MaxBackendIndex) throw new ArgumentException($"Maglev backend identity {b.Identity:x16} has index {b.Index}; indices must be 0..{MaxBackendIndex}.", nameof(backends));
                if (i > 0 && sorted[i - 1].Identity == b.Identity) throw new ArgumentException($"Maglev backends {sorted[i - 1].Index} and {b.Index} share identity {b.Identity:x16}; identities must be unique.", nameof(backends));
                maxWeight = Math.Max(maxWeight, b.Weight);

                // §3.4: offset = h1(name) mod M, skip = h2(name) mod (M − 1) + 1. Skip ∈ [1, M − 1] and M prime, so the
                // sequence offset + j·skip (mod M) visits every slot exactly once.
                var (h1, h2) = MaglevBackend.PermutationHashes(b.Identity, seed);
                _position[i] = (int)(h1 % (ulong)tableSize);
                _skip[i] = (int)(h2 % (ulong)(tableSize - 1)) + 1;
                _credit[i] = 0;
            }

            Fill(slots, sorted, maxWeight);
            return new MaglevTable(slots);
        }

        /// <summary>
        /// The population loop of §3.4 (Pseudocode 1): backends take turns claiming the next empty slot of their
        /// permutation until all M slots are taken. Weights follow Katran's MaglevHashV2: each pass a backend earns its
        /// weight in credit and takes a turn per <c>maxWeight</c> of credit, so its share is proportional to its weight;
        /// with equal weights this is exactly the paper's round-robin.
        /// </summary>
        private void Fill(ushort[] slots, ReadOnlySpan<MaglevBackend> sorted, int maxWeight)
        {
            int m = slots.Length;
            int n = sorted.Length;
            Array.Fill(slots, NoBackend);
            var position = _position.AsSpan(0, n);
            var skip = _skip.AsSpan(0, n);
            var credit = _credit.AsSpan(0, n);
            int filled = 0;
            while (true)
            {
                for (int i = 0; i < n; i++)
                {
                    int weight = sorted[i].Weight;
                    if (weight != maxWeight)
                    {
                        credit[i] += weight;
                        if (credit[i] < maxWeight) continue;
                        credit[i] -= maxWeight;
                    }

                    // Walk this backend's permutation to its next free slot. Position advances by skip mod M with an
                    // add-and-subtract instead of Katran's (offset + next·skip) % M: same sequence, no division.
                    int pos = position[i];
                    int step = skip[i];
                    while (slots[pos] != NoBackend)
                    {
                        pos += step;
                        if (pos >= m) pos -= m;
                    }

                    slots[pos] = (ushort)sorted[i].Index;
                    pos += step;
                    if (pos >= m) pos -= m;
                    position[i] = pos;
                    if (++filled == m) return;
                }
            }
        }

        private void EnsureCapacity(int n)
        {
            if (_sorted.Length >= n) return;
            int capacity = Math.Max(n, _sorted.Length * 2);
            _sorted = new MaglevBackend[capacity];
            _keys = new ulong[capacity];
            _position = new int[capacity];
            _skip = new int[capacity];
            _credit = new int[capacity];
        }
    }
}
