using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.State;

namespace FastPath.DataPlane.Conntrack;

/// <summary>
/// The connection tracking table of one forwarding worker: a fixed pool of <see cref="ConntrackEntry"/> records and
/// an open-addressing index over both directions of every connection.
/// </summary>
/// <remarks>
/// <para>
/// <b>Two index slots, one record.</b> Like Linux's nf_conn, which carries two nf_conntrack_tuple_hash nodes (one
/// per direction) in the same hash table, every connection is stored once in <c>_entries</c> and indexed twice in
/// <c>_slots</c>: under its original tuple and under its reply tuple. A packet of either direction finds the record
/// with one probe sequence, and the slot says which direction matched. NAT needs exactly this: the reply tuple of a
/// DNATed Service flow names the backend, not the frontend, so it is not derivable from the original tuple.
/// </para>
/// <para>
/// <b>Index.</b> Linear probing over a power-of-two array of 8-byte slots (32-bit hash fingerprint + entry
/// reference), sized to at least 4/3 × 2 × capacity so the load factor stays ≤ 0.75 (exactly 0.5 when capacity is a
/// power of two). A probe compares fingerprints in one cache line and touches an entry only on a fingerprint match.
/// Deletion is backward-shift (Knuth vol. 3, 6.4 Algorithm R) rather than tombstones: the cluster after a removed
/// slot is pulled back, so the table never accumulates deleted markers and probe lengths after millions of
/// insert/remove cycles are those of a freshly built table (tested).
/// </para>
/// <para>
/// <b>Full table.</b> Capacity is the number of connections. When it is reached, <see cref="Insert"/> takes a victim
/// from the records themselves, as a clock hand over <c>_entries</c>: from where the last eviction stopped it reads the
/// records in order (sequential memory, so the hardware prefetcher streams them, and the next ones are prefetched for
/// the next insert) until it has seen <c>evictionWindow</c> evictable connections. The first expired one is
/// reclaimed; failing that the non-assured connection closest to expiry among them is evicted (Linux's early_drop,
/// which never drops IPS_ASSURED entries); when <see cref="EvictionScanLimit"/> records hold nothing evictable the
/// insert fails and the caller drops the packet with conntrack-full. Each outcome is counted. (Issue 21: the earlier
/// window of index slots from the new tuple's home read one random record per occupied slot, 40 % of a new flow's
/// time under a flood, and refused an insert whenever its slots happened to be empty.) The hand stops just past the
/// victim and a reused record is the one just released, behind it, so a flood evicts about in the order connections
/// came, and the next victim's index slots are prefetched while the packets before it are processed.
/// </para>
/// <para>
/// <b>Threads.</b> One table per forwarding worker, written only by that worker (flows are steered to workers by
/// hash), so there are no locks or atomics; counters are plain fields. Expired entries are reclaimed lazily by
/// <see cref="Lookup"/> and incrementally by <see cref="Sweep"/>, never by a stop-the-world scan.
/// </para>
/// <para>
/// <b>Records outside the GC heap.</b> The records are reached through a raw pointer: a pinned array, or the mapped
/// region of a <see cref="StateFile"/> (`run --state-dir`), where they outlive the process so the next one can
/// <see cref="Restore"/> them. The index and the free list are always this process's own and are rebuilt from the
/// records on restore (a kill -9 can stop a backward shift half way; the records are what the packets wrote).
/// </para>
/// </remarks>
[SkipLocalsInit]
public sealed unsafe class ConntrackTable
{
    /// <summary><see cref="Insert"/> result: no room and nothing evictable (drop with conntrack-full).</summary>
    public const int Full = -1;
    /// <summary><see cref="Insert"/> result: a live connection already owns one of the two tuples (Linux's insert_failed clash).</summary>
    public const int Clash = -2;

    private struct Slot
    {
        /// <summary>Low 32 bits of the tuple hash; its low bits are the home slot.</summary>
        public uint Tag;
        /// <summary>0 = empty, else (entry index · 2 + direction) + 1, direction 1 = reply tuple.</summary>
        public int Ref;
    }

    private readonly Slot[] _slots;
    private readonly int _mask;
    private readonly ConntrackEntry* _entries;
    private readonly int _capacity;
    // What keeps _entries alive: the pinned array, or the mapped file.
    private readonly ConntrackEntry[]? _pinned;
    private readonly StateFile? _file;
    private readonly int[] _free;
    private int _freeCount;
    private readonly ulong _seed;
    private readonly int _evictionWindow;
    private int _evictCursor;

    /// <summary>
    /// Most records one insert into a full table reads looking for an evictable connection: a table full of assured
    /// connections refuses after this many (sequential reads, ~10 µs), and a run of more assured records than this
    /// costs one refused insert per this many records each time the hand passes it.
    /// </summary>
    public const int EvictionScanLimit = 1024;
    private readonly long[] _timeout;
    private int _sweepCursor;

    /// <param name="capacity">Maximum number of connections (each takes two index slots).</param>
    /// <param name="timeouts">Per-state timeouts; <see cref="ConntrackTimeouts.Default"/> when null.</param>
    /// <param name="seed">Hash seed; random when null. Fix it only in tests.</param>
    /// <param name="evictionWindow">Evictable connections compared for a victim when the table is full (Linux scans 8 buckets).</param>
    public ConntrackTable(int capacity, ConntrackTimeouts? timeouts = null, ulong? seed = null, int evictionWindow = 16)
        : this(capacity, null, timeouts, seed, evictionWindow)
    {
    }

    /// <summary>
    /// A table whose records are <paramref name="file"/>'s (opened with <see cref="StateLayout"/>): empty until
    /// <see cref="Restore"/> takes in what a previous process left there.
    /// </summary>
    public ConntrackTable(StateFile file, ConntrackTimeouts? timeouts = null, ulong? seed = null, int evictionWindow = 16)
        : this((int)file.Records(0), file, timeouts, seed, evictionWindow)
    {
    }

    private ConntrackTable(int capacity, StateFile? file, ConntrackTimeouts? timeouts, ulong? seed, int evictionWindow)
    {
        if (capacity < 1 || capacity > (1 << 28)) throw new ArgumentOutOfRangeException(nameof(capacity));
        if (evictionWindow < 1) throw new ArgumentOutOfRangeException(nameof(evictionWindow));
        long want = (long)capacity * 2 * 4 / 3 + 1;
        int slots = 16;
        while (slots < want) slots <<= 1;
        _slots = new Slot[slots];
        // Inserts write slots all over the index: resident now rather than page by page over the first minutes.
        ResidentMemory.Prefault(_slots);
        _mask = slots - 1;
        _capacity = capacity;
        _file = file;
        if (file is not null) _entries = (ConntrackEntry*)file.Region(0);
        else
        {
            // Records start on a cache line (as in a state file, whose regions are page-aligned): a 192-byte record is
            // then exactly three lines, not four (a hit at 1M connections touches every line of its record).
            // One record more than needed: the aligned start is less than a line past the array's.
            _pinned = GC.AllocateArray<ConntrackEntry>(capacity + 1, pinned: true);
            nint start = (nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_pinned));
            _entries = (ConntrackEntry*)((start + CacheLine - 1) & ~(nint)(CacheLine - 1));
        }
        _free = new int[capacity];
        for (int i = 0; i < capacity; i++) _free[i] = capacity - 1 - i; // pop hands out 0, 1, 2, ...
        _freeCount = capacity;
        _seed = seed ?? (ulong)Random.Shared.NextInt64() ^ (ulong)Random.Shared.NextInt64() << 1;
        _evictionWindow = evictionWindow;
        timeouts ??= ConntrackTimeouts.Default;
        _timeout = new long[(int)ConntrackState.SctpHeartbeatSent + 1];
        for (int s = 0; s < _timeout.Length; s++) _timeout[s] = timeouts.Nanoseconds((ConntrackState)s);
        Timeouts = timeouts;
    }

    public ConntrackTimeouts Timeouts { get; }
    public int Capacity => _capacity;
    /// <summary>Connections held, including expired ones not yet reclaimed.</summary>
    public int Count => _capacity - _freeCount;

    /// <summary>The state file the records live in (`run --state-dir`), or null.</summary>
    public StateFile? File => _file;

    /// <summary>What a state file holding a table of <paramref name="capacity"/> connections for worker <paramref name="worker"/> of <paramref name="workers"/> looks like.</summary>
    public static StateLayout StateLayout(int capacity, int worker, int workers) =>
        new(StateKind.Conntrack, ConntrackEntry.LayoutVersion, [StateRegion.Of<ConntrackEntry>(capacity)], worker, workers);
    /// <summary>Index slots (a power of two).</summary>
    public int SlotCount => _slots.Length;

    /// <summary>The index's memory, for the test that it is resident from the start.</summary>
    internal ReadOnlySpan<byte> IndexMemory => MemoryMarshal.AsBytes(_slots.AsSpan());

    public long Inserts { get; private set; }
    /// <summary>Live, non-assured connections dropped to make room (Linux's early_drop).</summary>
    public long Evictions { get; private set; }
    /// <summary>Connections reclaimed after their timeout (by lookup, insert or sweep).</summary>
    public long Expired { get; private set; }
    /// <summary>Inserts refused because the table was full of live assured connections.</summary>
    public long InsertFailures { get; private set; }
    /// <summary>Inserts refused because a tuple was already tracked.</summary>
    public long Clashes { get; private set; }

    /// <summary>Receives every connection as it ends (expired, evicted or removed), for flow logs; null when off.</summary>
    public Telemetry.FlowRing? FlowLog { get; set; }

    /// <summary>The connection record; valid for indices returned by <see cref="Lookup"/>/<see cref="Insert"/> until it is removed.</summary>
    public ref ConntrackEntry this[int index]
    {
        get
        {
            if ((uint)index >= (uint)_capacity) ThrowIndex();
            return ref _entries[index];
        }
    }

    private static void ThrowIndex() => throw new IndexOutOfRangeException();

    /// <summary>
    /// The connection whose original or reply tuple is <paramref name="key"/>, or -1. <paramref name="isReply"/>
    /// says which tuple matched. An expired connection is reclaimed on the spot and reported absent.
    /// </summary>
    public int Lookup(in FlowKey key, long now, out bool isReply) => Find(key, Tag(key), now, out isReply);

    /// <summary><see cref="Lookup(in FlowKey, long, out bool)"/> with <paramref name="tag"/> = <see cref="Tag"/>(key) already computed.</summary>
    public int Lookup(in FlowKey key, uint tag, long now, out bool isReply) => Find(key, tag, now, out isReply);

    /// <summary>The key's hash in this table (its seed), as <see cref="Prefetch"/> and the lookups take it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint Tag(in FlowKey key) => (uint)key.Hash(_seed);

    /// <summary>With several live workers: who tracks which tuple (shared by the workers' tables), and this table's worker.</summary>
    public FlowOwners? Owners { get; set; }
    public int WorkerId { get; set; }

    /// <summary>
    /// Brings what the lookups of <paramref name="tags"/> will read into the cache, without looking anything up: the
    /// first two passes of <see cref="LookupBatch"/> (every home slot, then the entry of each first fingerprint match),
    /// so the engine can warm a whole batch before processing its packets one by one. A hint only: nothing changes.
    /// </summary>
    public void Prefetch(ReadOnlySpan<uint> tags)
    {
        var slots = _slots;
        var entries = _entries;
        for (int start = 0; start < tags.Length; start += LookupGroup)
        {
            var group = tags.Slice(start, Math.Min(LookupGroup, tags.Length - start));
            foreach (uint tag in group) Prefetch(ref Unsafe.As<Slot, byte>(ref slots[(int)tag & _mask]));
            foreach (uint tag in group)
            {
                int i = (int)tag & _mask;
                for (ref Slot s = ref slots[i]; s.Ref != 0; s = ref slots[i = (i + 1) & _mask])
                    if (s.Tag == tag)
                    {
                        PrefetchEntry(ref entries[(s.Ref - 1) >> 1]);
                        break;
                    }
            }
        }
    }

    /// <summary>Brings the home slot of <paramref name="tag"/> into the cache (a tuple about to be inserted). A hint only.</summary>
    public void PrefetchSlot(uint tag) => Prefetch(ref Unsafe.As<Slot, byte>(ref _slots[(int)tag & _mask]));

    private const int CacheLine = 64;

    // A hit reads the expiry, a tuple, the state, its direction's rewrite and forwarding decision and writes the
    // counters and clocks: the whole record, three cache-line-aligned lines.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchEntry(ref ConntrackEntry entry)
    {
        ref byte e = ref Unsafe.As<ConntrackEntry, byte>(ref entry);
        Prefetch(ref e);
        Prefetch(ref Unsafe.Add(ref e, 64));
        Prefetch(ref Unsafe.Add(ref e, 128));
    }

    /// <summary>Lookup with the key's hash already computed (<paramref name="tag"/> = its low 32 bits).</summary>
    private int Find(in FlowKey key, uint tag, long now, out bool isReply)
    {
        isReply = false;
        var slots = _slots;
        var entries = _entries;
        int i = (int)tag & _mask;
        while (true)
        {
            ref Slot s = ref slots[i];
            if (s.Ref == 0) return -1;
            if (s.Tag == tag)
            {
                int r = s.Ref - 1;
                ref ConntrackEntry e = ref entries[r >> 1];
                bool reply = (r & 1) != 0;
                if (FlowKey.Same(in reply ? ref e.Reply : ref e.Original, in key))
                {
                    if (now >= e.Expires)
                    {
                        Expired++;
                        Release(r >> 1);
                        return -1;
                    }
                    isReply = reply;
                    return r >> 1;
                }
            }
            i = (i + 1) & _mask;
        }
    }

    /// <summary>
    /// <see cref="Lookup"/> for a batch of keys, with the same results: <paramref name="results"/>[i] is the
    /// connection of <paramref name="keys"/>[i] or -1, <paramref name="isReply"/>[i] which tuple matched.
    /// </summary>
    /// <remarks>
    /// A hit in a large table is two dependent cache misses (index slot, then the entry), so one lookup at a time
    /// waits for DRAM twice. Here, as in DPDK's rte_hash_lookup_bulk, the batch goes through three passes over
    /// groups of <see cref="LookupGroup"/> keys: hash every key and prefetch its home slot; walk each probe sequence
    /// to its first fingerprint match and prefetch that entry's expiry and tuples; then compare. The misses of a
    /// group overlap instead of adding up (ConntrackBenchmarks: TableLookupHit vs TableLookupHitBatch). A key whose
    /// first fingerprint match is another tuple, or whose connection expired, takes the single-key path.
    /// </remarks>
    public void LookupBatch(ReadOnlySpan<FlowKey> keys, long now, Span<int> results, Span<bool> isReply)
    {
        if (results.Length < keys.Length || isReply.Length < keys.Length) throw new ArgumentException("result spans shorter than the keys");
        var slots = _slots;
        var entries = _entries;
        Span<uint> tags = stackalloc uint[LookupGroup];
        Span<int> candidates = stackalloc int[LookupGroup];
        for (int start = 0; start < keys.Length; start += LookupGroup)
        {
            int n = Math.Min(LookupGroup, keys.Length - start);
            var group = keys.Slice(start, n);
            for (int j = 0; j < n; j++)
            {
                uint tag = Tag(group[j]);
                tags[j] = tag;
                Prefetch(ref Unsafe.As<Slot, byte>(ref slots[(int)tag & _mask]));
            }
            for (int j = 0; j < n; j++)
            {
                uint tag = tags[j];
                int i = (int)tag & _mask, candidate = -1;
                while (true)
                {
                    ref Slot s = ref slots[i];
                    if (s.Ref == 0) break;
                    if (s.Tag == tag)
                    {
                        candidate = s.Ref - 1;
                        PrefetchEntry(ref entries[candidate >> 1]);
                        break;
                    }
                    i = (i + 1) & _mask;
                }
                candidates[j] = candidate;
            }
            for (int j = 0; j < n; j++)
            {
                int candidate = candidates[j], at = start + j;
                if (candidate < 0)
                {
                    results[at] = -1;
                    isReply[at] = false;
                    continue;
                }
                ref ConntrackEntry e = ref entries[candidate >> 1];
                bool reply = (candidate & 1) != 0;
                if (now < e.Expires && FlowKey.Same(in reply ? ref e.Reply : ref e.Original, in group[j]))
                {
                    results[at] = candidate >> 1;
                    isReply[at] = reply;
                }
                else results[at] = Find(group[j], tags[j], now, out isReply[at]);
            }
        }
    }

    /// <summary>Keys whose cache misses <see cref="LookupBatch"/> overlaps: enough to cover DRAM latency, few enough that the prefetched lines stay in L1.</summary>
    public const int LookupGroup = 16;

    // A hint only: a slot's address comes from a managed reference without pinning, and a prefetch of an address the
    // GC has since moved away from does no harm (prefetches never fault).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Prefetch(ref byte at)
    {
        if (Sse.IsSupported) Sse.Prefetch0(Unsafe.AsPointer(ref at));
    }

    /// <summary>
    /// Tracks a new connection whose packets look like <paramref name="original"/> one way and
    /// <paramref name="reply"/> the other (pass <c>original.Reverse()</c> when no NAT applies). Returns the entry
    /// index, <see cref="Full"/>, or <see cref="Clash"/> when a live connection already uses either tuple or the two
    /// tuples are equal. The entry starts in the protocol's first state with its timeout; call
    /// <see cref="Observe"/> with the packet that created it.
    /// </summary>
    public int Insert(in FlowKey original, in FlowKey reply, long now)
    {
        // Each tuple is hashed once for both the clash check and its placement.
        uint tagO = Tag(original), tagR = Tag(reply);
        bool translated = !reply.Equals(original.Reverse());
        if (original.Equals(reply) || Find(original, tagO, now, out _) >= 0 || Find(reply, tagR, now, out _) >= 0
            || (translated && Owners is { } owners && owners.Owner(reply) is var owner && owner != WorkerId && owner != FlowOwners.None))
        {
            Clashes++;
            return Clash;
        }
        if (_freeCount == 0 && !MakeRoom(now))
        {
            InsertFailures++;
            return Full;
        }
        int index = _free[--_freeCount];
        ref ConntrackEntry e = ref _entries[index];
        ConntrackState first = original.Protocol switch
        {
            IpProtocol.Tcp => ConntrackState.TcpNew,
            IpProtocol.Icmp or IpProtocol.Icmpv6 => ConntrackState.IcmpRequest,
            IpProtocol.Sctp => ConntrackState.SctpNew,
            _ => ConntrackState.Unreplied,
        };
        e = new ConntrackEntry
        {
            Original = original,
            Reply = reply,
            State = first,
            Status = translated ? ConntrackStatus.InUse | ConntrackStatus.Translated : ConntrackStatus.InUse,
            Created = now,
            LastSeen = now,
            Expires = now + _timeout[(int)first],
        };
        if (translated) Nat.NatRewrite4.ForConnection(original, reply, out e.RewriteOriginal, out e.RewriteReply);
        Place(tagO, index << 1);
        Place(tagR, index << 1 | 1);
        if (Owners is { } claims)
        {
            claims.Claim(original, WorkerId);
            claims.Claim(reply, WorkerId);
        }
        Inserts++;
        return index;
    }

    /// <summary>
    /// Takes in the records a previous process left in this table's state file, one by one, as after a crash: each is
    /// moved by the wall clock's step (<see cref="StateFile.ClockShift"/>), checked (<see cref="Plausible"/>), dropped
    /// when it expired meanwhile or repeats a tuple already restored, and otherwise indexed under both tuples with its
    /// precomputed rewrites worked out again and its Services check (<see cref="ConntrackEntry.NatTag"/>) reset, so
    /// its next packet checks it against this process's Services; with several workers both tuples are claimed in
    /// <see cref="Owners"/> (set it first). Everything else is zeroed and goes on the free list. Control path, before
    /// forwarding starts: O(capacity).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // runs once, over every record: no tier-0 loop
    public ConntrackRestore Restore(long now)
    {
        long shift = _file?.ClockShift ?? 0;
        int restored = 0, expired = 0, invalid = 0;
        _freeCount = 0;
        // Walked from the top so the free list hands out low indices first, as a new table does.
        for (int i = _capacity - 1; i >= 0; i--)
        {
            ref ConntrackEntry e = ref _entries[i];
            // A free record is left as it is (most are, and writing them would dirty every page): Insert overwrites
            // all of it, and everything else reads only records in use.
            if (e.Status == ConntrackStatus.None && e.State == ConntrackState.None)
            {
                _free[_freeCount++] = i;
                continue;
            }
            e.Expires += shift;
            e.Created += shift;
            e.LastSeen += shift;
            bool plausible = Plausible(e, now);
            if (!plausible || now >= e.Expires)
            {
                if (plausible) expired++;
                else invalid++;
                e = default;
                _free[_freeCount++] = i;
                continue;
            }
            uint tagO = Tag(e.Original), tagR = Tag(e.Reply);
            if (Find(e.Original, tagO, now, out _) >= 0 || Find(e.Reply, tagR, now, out _) >= 0)
            {
                invalid++;
                e = default;
                _free[_freeCount++] = i;
                continue;
            }
            if ((e.Status & ConntrackStatus.Translated) != 0) Nat.NatRewrite4.ForConnection(e.Original, e.Reply, out e.RewriteOriginal, out e.RewriteReply);
            else e.RewriteOriginal = e.RewriteReply = default;
            e.DecisionOriginal = e.DecisionReply = default; // made by another process's engine
            e.NatTag = 0;
            Place(tagO, i << 1);
            Place(tagR, i << 1 | 1);
            if (Owners is { } claims)
            {
                claims.Claim(e.Original, WorkerId);
                claims.Claim(e.Reply, WorkerId);
            }
            restored++;
        }
        return new ConntrackRestore(restored, expired, invalid);
    }

    /// <summary>
    /// Whether a record read back from a state file could have been written by this table: in use, a state of its
    /// protocol, two different tuples of one protocol and address family each, the Translated bit saying exactly
    /// whether the reply tuple differs from the reversed original, known status bits, and times in order, none in the
    /// future and the expiry within its state's timeout of the last packet.
    /// </summary>
    internal bool Plausible(in ConntrackEntry e, long now)
    {
        const long slack = 1_000_000_000; // the wall clock may have been read a moment apart by two workers
        if ((e.Status & ConntrackStatus.InUse) == 0 || (byte)e.Status >= 128) return false;
        if (e.State is ConntrackState.None or > ConntrackState.SctpHeartbeatSent) return false;
        byte protocol = e.Original.Protocol;
        bool stateFits = e.State switch
        {
            <= ConntrackState.TcpClose => protocol == IpProtocol.Tcp,
            ConntrackState.Unreplied or ConntrackState.Replied => protocol is not (IpProtocol.Tcp or IpProtocol.Sctp or IpProtocol.Icmp or IpProtocol.Icmpv6),
            ConntrackState.IcmpRequest or ConntrackState.IcmpReplied => protocol is IpProtocol.Icmp or IpProtocol.Icmpv6,
            _ => protocol == IpProtocol.Sctp,
        };
        if (!stateFits || e.Reply.Protocol != protocol || e.Original.Equals(e.Reply)) return false;
        if (e.Original.Source.IsV4 != e.Original.Destination.IsV4 || e.Reply.Source.IsV4 != e.Reply.Destination.IsV4) return false;
        bool translated = !e.Reply.Equals(e.Original.Reverse());
        if (translated != ((e.Status & ConntrackStatus.Translated) != 0)) return false;
        if (e.Created > e.LastSeen || e.LastSeen > now + slack) return false;
        return e.Expires <= e.LastSeen + _timeout[(int)e.State] + slack && e.Expires > e.LastSeen - slack;
    }

    /// <summary>
    /// Accounts one packet of <paramref name="bytes"/> to the connection and advances its state machine, then sets
    /// the expiry from the new state's timeout. <paramref name="stateInput"/> is what the protocol's state machine
    /// reads (<see cref="Nat.ConntrackNat.StateInput"/>): the TCP flags byte, or SCTP's control chunks; ignored for
    /// other protocols.
    /// </summary>
    public void Observe(int index, bool isReply, ushort stateInput, int bytes, long now)
    {
        ref ConntrackEntry e = ref _entries[index];
        if (isReply)
        {
            e.PacketsReply++;
            e.BytesReply += bytes;
            e.Status |= ConntrackStatus.SeenReply;
        }
        else
        {
            e.PacketsOriginal++;
            e.BytesOriginal += bytes;
        }
        e.LastSeen = now;
        // Most packets: an established TCP connection without FIN or RST stays established (ConntrackTcp.Next's answer,
        // a reply assuring it) — taken here without the call.
        if (e.State == ConntrackState.TcpEstablished && (stateInput & (TcpHeader.Fin | TcpHeader.Rst)) == 0)
        {
            if (isReply) e.Status |= ConntrackStatus.Assured;
        }
        else switch (e.State)
        {
            case ConntrackState.Unreplied:
            case ConntrackState.Replied:
                if (isReply)
                {
                    e.State = ConntrackState.Replied;
                    e.Status |= ConntrackStatus.Assured;
                }
                break;
            case ConntrackState.IcmpRequest:
            case ConntrackState.IcmpReplied:
                if (isReply) e.State = ConntrackState.IcmpReplied;
                break;
            case >= ConntrackState.SctpNew:
                e.State = ConntrackSctp.Next(e.State, ref e.Status, isReply, (SctpPacket.ChunkSet)stateInput);
                break;
            default:
                e.State = ConntrackTcp.Next(e.State, ref e.Status, isReply, (byte)stateInput);
                break;
        }
        e.Expires = now + _timeout[(int)e.State];
    }

    /// <summary>Stops tracking the connection at <paramref name="index"/> (no-op if the slot is free).</summary>
    public void Remove(int index)
    {
        if ((uint)index >= (uint)_capacity || !_entries[index].InUse) return;
        Release(index);
    }

    /// <summary>
    /// Reclaims expired connections among at most <paramref name="budget"/> entry records, continuing from where
    /// the previous call stopped, so the packet loop can call it once per batch with a small budget and the whole
    /// table is visited every Capacity / budget calls. Returns how many were reclaimed.
    /// </summary>
    public int Sweep(long now, int budget)
    {
        var entries = _entries;
        int n = Math.Min(budget, _capacity);
        int reclaimed = 0;
        int c = _sweepCursor;
        for (int k = 0; k < n; k++)
        {
            ref ConntrackEntry e = ref entries[c];
            if (e.InUse && now >= e.Expires)
            {
                Release(c);
                reclaimed++;
            }
            if (++c == _capacity) c = 0;
        }
        _sweepCursor = c;
        Expired += reclaimed;
        return reclaimed;
    }

    /// <summary>Diagnostics: the longest and mean distance of an occupied slot from its home slot (O(slots)).</summary>
    public (int Max, double Mean) ProbeDistances()
    {
        long total = 0;
        int max = 0, used = 0;
        for (int i = 0; i < _slots.Length; i++)
        {
            if (_slots[i].Ref == 0) continue;
            int d = (i - ((int)_slots[i].Tag & _mask)) & _mask;
            total += d;
            used++;
            if (d > max) max = d;
        }
        return (max, used == 0 ? 0 : (double)total / used);
    }

    // Full table: from the clock hand on, reclaim the first expired record, else evict the non-assured one expiring
    // first among the next `_evictionWindow` evictable ones (whole table at most, EvictionScanLimit records unless the
    // window asks for more).
    private bool MakeRoom(long now)
    {
        var entries = _entries;
        int limit = (int)Math.Min(_capacity, Math.Max((long)_evictionWindow, EvictionScanLimit));
        int victim = -1, candidates = 0;
        long victimExpires = long.MaxValue;
        int c = _evictCursor;
        for (int k = 0; k < limit && candidates < _evictionWindow; k++)
        {
            int index = c;
            if (++c == _capacity) c = 0;
            ref ConntrackEntry e = ref entries[index];
            if (!e.InUse) continue;
            if (now >= e.Expires)
            {
                _evictCursor = c;
                Expired++;
                Release(index);
                PrefetchNextVictim();
                return true;
            }
            if (e.Assured) continue;
            candidates++;
            if (e.Expires < victimExpires)
            {
                victim = index;
                victimExpires = e.Expires;
            }
        }
        if (victim < 0)
        {
            _evictCursor = c;
            Prefetch(ref Unsafe.As<ConntrackEntry, byte>(ref entries[c]));
            return false;
        }
        // The hand stops just past the victim, so the records it passed over (still in the cache) are compared again
        // next time and a flood evicts about one record further each insert, oldest first.
        _evictCursor = victim + 1 == _capacity ? 0 : victim + 1;
        Evictions++;
        Release(victim);
        PrefetchNextVictim();
        return true;
    }

    /// <summary>
    /// The record after the hand is the likely next victim (in a flood, the oldest unreplied connection): its record
    /// was read by this scan, so its two index slots, which its release will rewrite, can be fetched now, while the
    /// packets in between are processed (measured, issue 21: Unindex's two random slot misses were most of an
    /// eviction's cost), and the record after the window is fetched for the scan.
    /// </summary>
    private void PrefetchNextVictim()
    {
        ref ConntrackEntry next = ref _entries[_evictCursor];
        if (next.InUse && !next.Assured)
        {
            Prefetch(ref Unsafe.As<Slot, byte>(ref _slots[(int)Tag(next.Original) & _mask]));
            Prefetch(ref Unsafe.As<Slot, byte>(ref _slots[(int)Tag(next.Reply) & _mask]));
        }
        int ahead = _evictCursor + _evictionWindow;
        if ((uint)ahead < (uint)_capacity) Prefetch(ref Unsafe.As<ConntrackEntry, byte>(ref _entries[ahead]));
    }

    private void Place(uint tag, int reference)
    {
        int i = (int)tag & _mask;
        while (_slots[i].Ref != 0) i = (i + 1) & _mask;
        _slots[i] = new Slot { Tag = tag, Ref = reference + 1 };
    }

    private void Release(int index)
    {
        ref ConntrackEntry e = ref _entries[index];
        FlowLog?.Ended(e);
        Unindex(Tag(e.Original), (index << 1) + 1);
        Unindex(Tag(e.Reply), (index << 1 | 1) + 1);
        e.Status = ConntrackStatus.None;
        e.State = ConntrackState.None;
        _free[_freeCount++] = index;
    }

    // Backward-shift deletion for linear probing: after emptying slot i, move back each following slot of the
    // cluster whose home is not in (i, j] cyclically, so every remaining key stays reachable from its home
    // without tombstones.
    private void Unindex(uint tag, int reference)
    {
        var slots = _slots;
        int i = (int)tag & _mask;
        while (slots[i].Ref != reference)
        {
            if (slots[i].Ref == 0) return; // not indexed: cannot happen for a live entry
            i = (i + 1) & _mask;
        }
        int j = i;
        while (true)
        {
            j = (j + 1) & _mask;
            if (slots[j].Ref == 0) break;
            int home = (int)slots[j].Tag & _mask;
            bool stays = i <= j ? i < home && home <= j : i < home || home <= j;
            if (stays) continue;
            slots[i] = slots[j];
            i = j;
        }
        slots[i] = default;
    }
}

/// <summary>What <see cref="ConntrackTable.Restore"/> found: connections taken in, ones that expired while no process ran, and records that failed a check (or repeated a tuple).</summary>
public readonly record struct ConntrackRestore(int Restored, int Expired, int Invalid);
