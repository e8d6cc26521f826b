using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using FastPath.DataPlane.Pipeline;

namespace FastPath.DataPlane.Ports;

/// <summary>
/// One worker's AF_XDP packet memory (a UMEM, Documentation/networking/af_xdp.rst), shared by that worker's socket of
/// every attached AF_XDP interface (XDP_SHARED_UMEM), and at the same time the arena of the worker's
/// <see cref="PacketBatch"/>: one pinned array holding the batch slots, then page-aligned 4 KB chunks registered with
/// the kernel. A frame the kernel receives into a chunk is processed by the engine where it lies, and when the engine
/// sends it out of another AF_XDP interface of the same worker, the same (address, length) goes on that socket's
/// transmit ring: no copy by FastPath. A chunk comes back to the worker on the completion ring of the socket that sent
/// it and goes on whichever fill ring needs one next.
/// <para>
/// Every chunk is in exactly one state at a time, kept here: free (on the worker's stack), on one socket's fill ring
/// (the kernel may write a received frame into it), with the engine (received, in the current batch), or in flight on
/// one socket's transmit ring (until its completion). Each move checks the state it leaves; a move from the wrong
/// state is counted in <see cref="OwnershipErrors"/> instead of being made, so a chunk is never both on a fill ring
/// and in flight. Only the worker's thread moves chunks. The coordinator's part — binding a new socket to this UMEM
/// (<see cref="SharedSocket"/>) and closing one — is under a lock, off the packet path; a closed socket's chunks are
/// given back by the worker (<see cref="ReclaimClosed"/>) once the kernel can no longer touch them.
/// </para>
/// </summary>
public sealed unsafe class XdpUmem
{
    /// <summary>Bytes per chunk: one page, so a frame never crosses a page (the kernel's aligned mode).</summary>
    public const int ChunkSize = 4096;
    /// <summary>Chunks of a worker's UMEM: 16 MB, enough to keep dozens of sockets' fill rings stocked.</summary>
    public const int DefaultChunks = 4096;
    /// <summary>
    /// Headroom registered with the UMEM (xdp_umem_reg.headroom): the kernel puts each received frame this many bytes,
    /// plus its own XDP_PACKET_HEADROOM (256), into its chunk, so the engine can prepend a VXLAN header (50 bytes) or an
    /// ICMP error's headers in place, as in a batch slot (<see cref="PacketBatch.Headroom"/>).
    /// </summary>
    public const int Headroom = PacketBatch.Headroom;

    private enum State : byte { Free, Fill, Engine, Transmit }

    private readonly State[] _state;
    private readonly int[] _owner;
    private readonly int[] _free;
    private int _freeCount;
    private int _withEngine, _inFlight, _onFill;
    private readonly byte* _chunks;

    private readonly object _sockets = new();
    private readonly List<int> _bound = [];
    private readonly ConcurrentQueue<int> _closed = new();
    private int _closedPending;
    private int _nextOwner;

    /// <param name="batchCapacity">Slots of the batch built on this memory (<see cref="CreateBatch"/>); 0 for none.</param>
    /// <param name="slotSize">Bytes per slot of that batch.</param>
    /// <param name="chunks">Chunks registered with the kernel.</param>
    public XdpUmem(int batchCapacity = 0, int slotSize = PacketBatch.SlotSize, int chunks = DefaultChunks)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(chunks, 64);
        BatchCapacity = batchCapacity;
        SlotSize = slotSize;
        Chunks = chunks;
        int slots = batchCapacity * slotSize;
        Arena = GC.AllocateUninitializedArray<byte>(slots + ChunkSize + chunks * ChunkSize, pinned: true);
        byte* start = (byte*)Unsafe.AsPointer(ref Arena[slots]);
        int pad = (int)((ChunkSize - (nint)start % ChunkSize) % ChunkSize);
        ChunkRegionOffset = slots + pad;
        _chunks = start + pad;
        _state = new State[chunks];
        _owner = new int[chunks];
        _free = new int[chunks];
        for (int c = 0; c < chunks; c++) _free[c] = chunks - 1 - c;
        _freeCount = chunks;
        FillTarget = RingSize;
    }

    /// <summary>Entries of each socket's four rings.</summary>
    public const int RingSize = 1024;

    /// <summary>The pinned array: the batch slots, then the chunks from <see cref="ChunkRegionOffset"/>.</summary>
    public byte[] Arena { get; }

    /// <summary>Where chunk 0 starts in <see cref="Arena"/> (page-aligned in memory).</summary>
    public int ChunkRegionOffset { get; }

    /// <summary>The address registered with XDP_UMEM_REG (chunk 0).</summary>
    public byte* Base => _chunks;

    public int Chunks { get; }
    public int BatchCapacity { get; }
    public int SlotSize { get; }

    /// <summary>How many chunks each socket's fill ring is kept stocked with (the worker sets it from its socket count).</summary>
    public int FillTarget { get; private set; }

    /// <summary>Chunks on the worker's free stack.</summary>
    public int FreeChunks => _freeCount;
    /// <summary>Chunks on some socket's fill ring (or taken from it by the kernel and not yet received).</summary>
    public int OnFillRings => _onFill;
    /// <summary>Chunks holding a received frame the engine works on.</summary>
    public int WithEngine => _withEngine;
    /// <summary>Chunks on some socket's transmit ring, waiting for their completion.</summary>
    public int InFlight => _inFlight;
    /// <summary>Moves asked from a state the chunk was not in (a chunk the kernel gave back twice, a stray address):
    /// refused and counted. Zero unless something is badly wrong.</summary>
    public long OwnershipErrors { get; private set; }

    /// <summary>A batch whose arena is this memory, so frames received into chunks are processed in place.</summary>
    public PacketBatch CreateBatch() => new(BatchCapacity, SlotSize, Arena);

    /// <summary>Shares the chunks out over <paramref name="sockets"/> fill rings, keeping a quarter back for frames
    /// with the engine and in flight (worker thread, between batches).</summary>
    public void SetSockets(int sockets) =>
        FillTarget = Math.Clamp(Chunks * 3 / 4 / Math.Max(sockets, 1), 16, RingSize);

    /// <summary>The chunk holding UMEM address <paramref name="address"/> (an offset from <see cref="Base"/>).</summary>
    public static int ChunkOf(ulong address) => (int)(address / ChunkSize);

    internal bool TryTakeFree(out int chunk)
    {
        if (_freeCount == 0)
        {
            chunk = -1;
            return false;
        }
        chunk = _free[--_freeCount];
        return true;
    }

    /// <summary>Free → on <paramref name="owner"/>'s fill ring (the chunk was just taken from the free stack).</summary>
    internal void ToFill(int chunk, int owner)
    {
        Move(chunk, State.Fill, owner);
        _onFill++;
    }

    private void Move(int chunk, State state, int owner)
    {
        _state[chunk] = state;
        _owner[chunk] = owner;
    }

    /// <summary>Fill ring of <paramref name="owner"/> → engine (the kernel received a frame into it).</summary>
    internal bool Received(int chunk, int owner)
    {
        if (!Is(chunk, State.Fill, owner)) return false;
        _state[chunk] = State.Engine;
        _onFill--;
        _withEngine++;
        return true;
    }

    /// <summary>Whether <paramref name="chunk"/> is on <paramref name="owner"/>'s fill ring: a frame received into it
    /// that is copied out goes straight back there (the copying read), so its state does not change.</summary>
    internal bool IsOnFillOf(int chunk, int owner) => Is(chunk, State.Fill, owner);

    /// <summary>True when <paramref name="chunk"/> is in <paramref name="state"/> and, unless
    /// <paramref name="owner"/> is 0, that socket's; otherwise counted in <see cref="OwnershipErrors"/>.</summary>
    private bool Is(int chunk, State state, int owner)
    {
        if ((uint)chunk < (uint)Chunks && _state[chunk] == state && (owner == 0 || _owner[chunk] == owner)) return true;
        OwnershipErrors++;
        return false;
    }

    /// <summary>Engine → in flight on <paramref name="owner"/>'s transmit ring (forwarded without a copy).</summary>
    internal bool Sending(int chunk, int owner)
    {
        if (!Is(chunk, State.Engine, 0)) return false;
        Move(chunk, State.Transmit, owner);
        _withEngine--;
        _inFlight++;
        return true;
    }

    /// <summary>Free → in flight on <paramref name="owner"/>'s transmit ring (a frame copied into it).</summary>
    internal void SendingCopy(int chunk, int owner)
    {
        Move(chunk, State.Transmit, owner);
        _inFlight++;
    }

    /// <summary>In flight on <paramref name="owner"/>'s transmit ring → free (its completion came back).</summary>
    internal void Completed(int chunk, int owner)
    {
        if (!Is(chunk, State.Transmit, owner)) return;
        _inFlight--;
        Free(chunk);
    }

    /// <summary>Engine → free: the frame was dropped, copied elsewhere, or handed over. A chunk already sent on by
    /// descriptor (or freed) is left as it is, so this is safe for every chunk a batch received.</summary>
    public void Release(int chunk)
    {
        if (_state[chunk] != State.Engine) return;
        _withEngine--;
        Free(chunk);
    }

    private void Free(int chunk)
    {
        Move(chunk, State.Free, 0);
        _free[_freeCount++] = chunk;
    }

    /// <summary>A socket id for a new socket on this memory (ids start at 1; 0 is nobody).</summary>
    internal int NewOwner() => Interlocked.Increment(ref _nextOwner);

    /// <summary>The descriptor of a bound socket on this memory, for the next socket's XDP_SHARED_UMEM bind; -1 when
    /// there is none (the next socket registers the memory itself). Coordinator side, under the lock.</summary>
    internal int SharedSocket()
    {
        lock (_sockets) return _bound.Count > 0 ? _bound[0] : -1;
    }

    internal void Bound(int fd)
    {
        lock (_sockets) _bound.Add(fd);
    }

    /// <summary>A socket on this memory is about to be closed: no later socket shares through it.</summary>
    internal void Unbinding(int fd)
    {
        lock (_sockets) _bound.Remove(fd);
    }

    /// <summary>A socket on this memory was closed (coordinator): its chunks are the worker's again at its next
    /// <see cref="ReclaimClosed"/>.</summary>
    internal void Closed(int owner)
    {
        _closed.Enqueue(owner);
        Interlocked.Increment(ref _closedPending);
    }

    /// <summary>True when a socket was closed since the last <see cref="ReclaimClosed"/> (one read per batch).</summary>
    public bool HasClosed => Volatile.Read(ref _closedPending) != 0;

    /// <summary>
    /// Takes back the chunks that closed sockets held on their fill and transmit rings (worker thread). The kernel is
    /// done with them: closing an XSK unbinds it after synchronize_net(), so no receive is still writing, and a frame
    /// on a veth's transmit ring was copied into its skb by sendto(2).
    /// </summary>
    public void ReclaimClosed()
    {
        while (_closed.TryDequeue(out int owner))
        {
            Interlocked.Decrement(ref _closedPending);
            for (int c = 0; c < Chunks; c++)
            {
                if (_owner[c] != owner) continue;
                if (_state[c] == State.Fill) _onFill--;
                else if (_state[c] == State.Transmit) _inFlight--;
                else continue;
                Free(c);
            }
        }
    }
}
