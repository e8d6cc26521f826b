using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace FastPath.DataPlane.Ports;

/// <summary>
/// An existing interface attached through AF_XDP (Documentation/networking/af_xdp.rst; the kernel's
/// tools/lib/bpf/xsk.c and libxdp's xsk.c do the same steps): per queue an XSK socket on a UMEM (<see cref="XdpUmem"/>:
/// page-aligned 4 KB chunks) with its four rings — fill and completion for the UMEM, rx and tx for the socket — mmap'ed
/// from the kernel; one XSKMAP holding the sockets by queue index; and the smallest XDP program that sends every frame of
/// a queue to its socket, `bpf_redirect_map(&amp;xsks, ctx->rx_queue_index, XDP_PASS)`, hand-assembled and loaded with
/// bpf(BPF_PROG_LOAD), attached with a BPF link in generic (SKB) mode, so that it works on any interface, veths
/// included, and goes away with the link when the device is closed. Sockets are bound in copy mode (XDP_COPY): the
/// kernel copies between the skb and the UMEM; zero-copy needs driver support a veth lacks.
/// <para>
/// Queue q of every interface `fastpath run` attaches uses worker q's UMEM (<see cref="Open(string, IReadOnlyList{XdpUmem})"/>):
/// the first socket registers it (XDP_UMEM_REG), each later one binds with XDP_SHARED_UMEM and the first's descriptor —
/// with a fill and a completion ring of its own, which the kernel requires when the sockets are on different
/// interfaces or queues (Linux 5.10+). The worker's batch lives in the same memory, so <see cref="ReadInPlace"/> hands
/// the engine the received frame where the kernel wrote it, and <see cref="TransmitInPlace"/> sends it out of another
/// interface by putting the same (address, length) on that socket's tx ring: no copy by FastPath. The copying
/// <see cref="Read"/> and <see cref="Write"/> serve batches elsewhere and frames from other kinds of port. Fill rings
/// are stocked, and completions taken back, by the worker between batches (<see cref="Service"/>), never by the thread
/// that opens the device. Copy mode sends in sendto(2)'s context: frames sent by descriptor are kicked once per batch
/// (<see cref="Flush"/>), copied ones at once.
/// </para>
/// </summary>
[SkipLocalsInit]
public sealed unsafe partial class XdpSocketDevice : LinkDevice
{
    private const int AfXdp = 44, SockRaw = 3, SockCloExec = 0x80000, SolXdp = 283;
    private const int XdpMmapOffsets = 1, XdpRxRing = 2, XdpTxRing = 3, XdpUmemReg = 4, XdpUmemFillRing = 5, XdpUmemCompletionRing = 6;
    private const long PgoffRx = 0, PgoffTx = 0x80000000, PgoffFill = 0x100000000, PgoffCompletion = 0x180000000;
    private const ushort XdpSharedUmem = 1 << 0, XdpCopy = 1 << 1;
    private const int BpfMapCreate = 0, BpfMapUpdateElem = 2, BpfMapDeleteElem = 3, BpfProgLoad = 5, BpfLinkCreate = 28;
    private const int BpfMapTypeXskMap = 17, BpfProgTypeXdp = 6, BpfXdp = 37, XdpFlagsSkbMode = 2;
    private const int ProtRead = 1, ProtWrite = 2, MapShared = 1, MapPopulate = 0x8000;
    private const int MsgDontWait = 0x40, EAgain = 11, ENoBufs = 105, EBusy = 16, EInval = 22, EMsgSize = 90;
    private const int ChunkSize = XdpUmem.ChunkSize, RingSize = XdpUmem.RingSize;
    /// <summary>Chunks of the UMEM of a device opened on its own (<see cref="Open(string, int)"/>).</summary>
    private const int StandaloneChunks = 2048;
    private const long SysBpf = 321; // x86-64

    private readonly Queue[] _queues;
    private readonly int _mapFd, _progFd, _linkFd;

    /// <summary>One queue: its socket, its UMEM and its rings (producer/consumer pointers into the mmap'ed rings).</summary>
    private sealed class Queue(XdpUmem umem)
    {
        public int Fd = -1;
        public readonly XdpUmem Umem = umem;
        /// <summary>This socket's id in the UMEM's chunk ownership.</summary>
        public int Owner;
        public bool Bound;
        /// <summary>Descriptors were posted by <see cref="TransmitInPlace"/> since the last <see cref="Flush"/>.</summary>
        public bool Unkicked;
        public Ring Rx, Tx, Fill, Completion;
        /// <summary>Chunks given to the fill ring that have not come back on the rx ring.</summary>
        public int OnFill;
    }

    private struct Ring
    {
        public byte* Map;
        public nuint MapLength;
        public uint* Producer, Consumer;
        public byte* Descriptors;
        public uint Cached; // our index: the producer's for rings we fill (fill, tx), the consumer's for the others
    }

    private XdpSocketDevice(string name, Queue[] queues, int mapFd, int progFd, int linkFd)
        : base(name, LinkKind.Xdp, created: false, TapOffloads.None, 0)
    {
        _queues = queues;
        _mapFd = mapFd;
        _progFd = progFd;
        _linkFd = linkFd;
    }

    public override int Queues => _queues.Length;

    public override int FileDescriptor(int queue = 0) => _queues[queue].Fd;

    /// <summary>Attaches to <paramref name="name"/> with one XSK socket per queue (queue ids 0..n-1), each on a UMEM of
    /// its own.</summary>
    /// <exception cref="IOException">No AF_XDP, no permission to load XDP (CAP_BPF, CAP_NET_ADMIN), or the interface
    /// has fewer queues.</exception>
    public static XdpSocketDevice Open(string name, int queues = 1) =>
        Open(name, Enumerable.Range(0, queues).Select(_ => new XdpUmem(chunks: StandaloneChunks)).ToArray());

    /// <summary>Attaches to <paramref name="name"/> with one XSK socket per queue, queue q on <paramref name="umems"/>[q]
    /// (worker q's memory, shared with its sockets on other interfaces).</summary>
    /// <exception cref="IOException">As <see cref="Open(string, int)"/>.</exception>
    public static XdpSocketDevice Open(string name, IReadOnlyList<XdpUmem> umems)
    {
        int queues = umems.Count;
        int ifindex = InterfaceState.Require(name);
        int map = -1, prog = -1, link = -1;
        var opened = new Queue[queues];
        try
        {
            map = CreateXskMap(name, queues);
            prog = LoadProgram(name, map);
            // Every socket bound before any goes into the map: a socket in the map lives as long as the map, so one
            // put there before a later queue fails would keep its queue busy after the cleanup below.
            for (int q = 0; q < queues; q++) opened[q] = OpenQueue(name, ifindex, q, umems[q]);
            byte* attr = stackalloc byte[32];
            for (int q = 0; q < queues; q++)
            {
                int key = q, value = opened[q].Fd;
                new Span<byte>(attr, 32).Clear();
                *(int*)attr = map;
                *(ulong*)(attr + 8) = (ulong)&key;
                *(ulong*)(attr + 16) = (ulong)&value;
                if (Bpf(BpfMapUpdateElem, attr, 32) < 0) throw Failure(name, "XSKMAP update");
            }
            // Attached last: until the sockets are in the map the program would pass every frame anyway.
            byte* l = stackalloc byte[64];
            new Span<byte>(l, 64).Clear();
            *(int*)l = prog;
            *(int*)(l + 4) = ifindex;
            *(int*)(l + 8) = BpfXdp;
            *(int*)(l + 12) = XdpFlagsSkbMode;
            link = (int)Bpf(BpfLinkCreate, l, 64);
            if (link < 0) throw Failure(name, "attaching the XDP program (BPF_LINK_CREATE)");
            return new XdpSocketDevice(name, opened, map, prog, link);
        }
        catch
        {
            if (link >= 0) Close(link);
            if (map >= 0) for (int q = 0; q < queues; q++) RemoveFromMap(map, q);
            foreach (var q in opened) if (q is not null) CloseQueue(q);
            foreach (int fd in new[] { prog, map }) if (fd >= 0) Close(fd);
            throw;
        }
    }

    /// <summary>Takes queue <paramref name="key"/>'s socket out of the XSKMAP (BPF_MAP_DELETE_ELEM: map_fd @0, key
    /// @8), so closing the socket releases its queue at once rather than when the map is freed.</summary>
    private static void RemoveFromMap(int map, int key)
    {
        byte* attr = stackalloc byte[32];
        new Span<byte>(attr, 32).Clear();
        *(int*)attr = map;
        *(ulong*)(attr + 8) = (ulong)&key;
        _ = Bpf(BpfMapDeleteElem, attr, 32);
    }

    private static int CreateXskMap(string name, int entries)
    {
        // union bpf_attr, BPF_MAP_CREATE: map_type @0, key_size @4, value_size @8, max_entries @12, map_flags @16.
        byte* attr = stackalloc byte[72];
        new Span<byte>(attr, 72).Clear();
        ((uint*)attr)[0] = BpfMapTypeXskMap;
        ((uint*)attr)[1] = 4;
        ((uint*)attr)[2] = 4;
        ((uint*)attr)[3] = (uint)entries;
        int fd = (int)Bpf(BpfMapCreate, attr, 72);
        if (fd < 0) throw Failure(name, "creating the XSKMAP (bpf BPF_MAP_CREATE)");
        return fd;
    }

    /// <summary>
    /// The program, as struct bpf_insn (code u8, dst_reg:4 | src_reg:4 u8, off s16, imm s32):
    /// r2 = *(u32 *)(r1 + 16) (xdp_md.rx_queue_index); r1 = map (ld_imm64, src BPF_PSEUDO_MAP_FD); r3 = XDP_PASS
    /// (bpf_redirect_map's action when the key has no socket); call bpf_redirect_map (helper 51); exit.
    /// </summary>
    private static int LoadProgram(string name, int map)
    {
        ulong* insns = stackalloc ulong[6];
        insns[0] = Insn(0x61, 2, 1, 16, 0);
        insns[1] = Insn(0x18, 1, 1, 0, map);
        insns[2] = 0;
        insns[3] = Insn(0xb7, 3, 0, 0, 2);
        insns[4] = Insn(0x85, 0, 0, 0, 51);
        insns[5] = Insn(0x95, 0, 0, 0, 0);
        byte* license = stackalloc byte[4];
        license[0] = (byte)'G'; license[1] = (byte)'P'; license[2] = (byte)'L'; license[3] = 0;
        // BPF_PROG_LOAD: prog_type @0, insn_cnt @4, insns @8, license @16, log_level @24, log_size @28, log_buf @32,
        // kern_version @40, prog_flags @44, prog_name[16] @48, prog_ifindex @64, expected_attach_type @68.
        byte* attr = stackalloc byte[128];
        new Span<byte>(attr, 128).Clear();
        *(uint*)attr = BpfProgTypeXdp;
        *(uint*)(attr + 4) = 6;
        *(ulong*)(attr + 8) = (ulong)insns;
        *(ulong*)(attr + 16) = (ulong)license;
        "fastpath_xsk"u8.CopyTo(new Span<byte>(attr + 48, 16));
        *(uint*)(attr + 68) = BpfXdp;
        int fd = (int)Bpf(BpfProgLoad, attr, 128);
        if (fd < 0) throw Failure(name, "loading the XDP program (bpf BPF_PROG_LOAD)");
        return fd;
    }

    private static ulong Insn(byte code, int dst, int src, short off, int imm) =>
        code | (ulong)(byte)(dst | src << 4) << 8 | (ulong)(ushort)off << 16 | (ulong)(uint)imm << 32;

    private static Queue OpenQueue(string name, int ifindex, int queueId, XdpUmem umem)
    {
        var q = new Queue(umem);
        try
        {
            q.Fd = Socket(AfXdp, SockRaw | SockCloExec, 0);
            if (q.Fd < 0) throw Failure(name, "socket(AF_XDP)");
            int shared = umem.SharedSocket();
            if (shared < 0)
            {
                // struct xdp_umem_reg: addr u64 @0, len u64 @8, chunk_size u32 @16, headroom u32 @20, flags u32 @24.
                byte* reg = stackalloc byte[32];
                new Span<byte>(reg, 32).Clear();
                *(ulong*)reg = (ulong)umem.Base;
                *(ulong*)(reg + 8) = (ulong)ChunkSize * (ulong)umem.Chunks;
                *(uint*)(reg + 16) = ChunkSize;
                *(uint*)(reg + 20) = XdpUmem.Headroom;
                if (SetSocketOption(q.Fd, SolXdp, XdpUmemReg, reg, 24) < 0) throw Failure(name, "XDP_UMEM_REG");
            }
            // A socket sharing the UMEM from another interface or queue still has a fill and a completion ring of its
            // own (the kernel keeps each ring single-producer, single-consumer): set before the bind, as libxdp does.
            int size = RingSize;
            foreach (int option in new[] { XdpUmemFillRing, XdpUmemCompletionRing, XdpRxRing, XdpTxRing })
                if (SetSocketOption(q.Fd, SolXdp, option, &size, sizeof(int)) < 0) throw Failure(name, "ring size");
            // struct xdp_mmap_offsets: rx, tx, fr, cr, each struct xdp_ring_offset {producer, consumer, desc, flags} u64.
            ulong* off = stackalloc ulong[16];
            int length = 128;
            if (GetSocketOption(q.Fd, SolXdp, XdpMmapOffsets, off, &length) < 0) throw Failure(name, "XDP_MMAP_OFFSETS");
            q.Rx = MapRing(name, q.Fd, off, PgoffRx, 16);
            q.Tx = MapRing(name, q.Fd, off + 4, PgoffTx, 16);
            q.Fill = MapRing(name, q.Fd, off + 8, PgoffFill, 8);
            q.Completion = MapRing(name, q.Fd, off + 12, PgoffCompletion, 8);
            // struct sockaddr_xdp: family u16 @0, flags u16 @2, ifindex u32 @4, queue_id u32 @8, shared_umem_fd u32 @12.
            // A shared bind takes no mode flags: the socket inherits the first one's (copy mode).
            byte* sxdp = stackalloc byte[16];
            new Span<byte>(sxdp, 16).Clear();
            *(ushort*)sxdp = AfXdp;
            *(ushort*)(sxdp + 2) = shared < 0 ? XdpCopy : XdpSharedUmem;
            *(uint*)(sxdp + 4) = (uint)ifindex;
            *(uint*)(sxdp + 8) = (uint)queueId;
            *(uint*)(sxdp + 12) = shared < 0 ? 0 : (uint)shared;
            // A queue whose socket was just closed (a failed attempt a moment ago, a restart) is released by the kernel
            // asynchronously: EBUSY for a short while. Control path, so a bounded wait is fine.
            int bound = Bind(q.Fd, sxdp, 16);
            for (int wait = 0; bound < 0 && Marshal.GetLastPInvokeError() == EBusy && wait < 40; wait++)
            {
                Thread.Sleep(25);
                bound = Bind(q.Fd, sxdp, 16);
            }
            if (bound < 0)
                throw Failure(name, queueId > 0 && Marshal.GetLastPInvokeError() == EInval
                    ? $"bind to queue {queueId} (the interface has fewer queues than workers: `ethtool -l {name}`)"
                    : $"bind to queue {queueId}{(shared < 0 ? "" : " sharing the worker's UMEM (XDP_SHARED_UMEM, Linux 5.10+)")}");
            q.Owner = umem.NewOwner();
            q.Bound = true;
            umem.Bound(q.Fd);
            return q;
        }
        catch
        {
            CloseQueue(q);
            throw;
        }
    }

    private static Ring MapRing(string name, int fd, ulong* offsets, long pgoff, int descriptorSize)
    {
        nuint length = (nuint)(offsets[2] + (ulong)(RingSize * descriptorSize));
        byte* map = (byte*)Map(null, length, ProtRead | ProtWrite, MapShared | MapPopulate, fd, (nint)pgoff);
        if (map == (byte*)-1) throw Failure(name, "mmap of an XDP ring");
        return new Ring
        {
            Map = map, MapLength = length,
            Producer = (uint*)(map + offsets[0]), Consumer = (uint*)(map + offsets[1]), Descriptors = map + offsets[2],
        };
    }

    private static IOException Failure(string name, string what)
    {
        int errno = Marshal.GetLastPInvokeError();
        string hint = errno is 1 or 13 ? " (AF_XDP and XDP programs need CAP_NET_ADMIN and CAP_BPF: run as root)"
            : errno == 97 ? " (this kernel has no AF_XDP)"
            : errno == EBusy ? " (another XDP program is attached to the interface)" : "";
        return new IOException($"attach {name} (xdp): {what}: {Marshal.GetPInvokeErrorMessage(errno)}{hint}");
    }

    /// <summary>The UMEM queue <paramref name="queue"/>'s socket is on.</summary>
    public XdpUmem UmemOf(int queue) => _queues[queue].Umem;

    /// <summary>
    /// Kicks what is left on queue <paramref name="queue"/>'s transmit ring, takes its completions back and stocks its
    /// fill ring up to the UMEM's <see cref="XdpUmem.FillTarget"/> from the free chunks. Worker thread, between batches.
    /// </summary>
    public void Service(int queue)
    {
        var q = _queues[queue];
        if (!q.Bound) return;
        if (q.Unkicked) Flush(queue);
        Reap(q);
        var umem = q.Umem;
        ref var fill = ref q.Fill;
        uint before = fill.Cached;
        while (q.OnFill < umem.FillTarget && umem.TryTakeFree(out int chunk))
        {
            ((ulong*)fill.Descriptors)[fill.Cached++ & (RingSize - 1)] = (ulong)chunk * ChunkSize;
            umem.ToFill(chunk, q.Owner);
            q.OnFill++;
        }
        if (fill.Cached != before) Volatile.Write(ref *fill.Producer, fill.Cached);
    }

    /// <summary>Frees the chunks whose transmission the kernel completed.</summary>
    private static void Reap(Queue q)
    {
        ref var completion = ref q.Completion;
        uint done = Volatile.Read(ref *completion.Producer);
        if (completion.Cached == done) return;
        while (completion.Cached != done)
        {
            ulong address = ((ulong*)completion.Descriptors)[completion.Cached & (RingSize - 1)];
            q.Umem.Completed(XdpUmem.ChunkOf(address), q.Owner);
            completion.Cached++;
        }
        Volatile.Write(ref *completion.Consumer, completion.Cached);
    }

    /// <summary>
    /// Takes the next received frame without copying it: its chunk passes to the engine and <paramref name="offset"/>
    /// says where the frame starts in the UMEM's arena (<see cref="XdpUmem.Arena"/>). The chunk goes back to the worker
    /// when the engine is done with it (<see cref="XdpUmem.Release"/>) or when the frame was sent on.
    /// </summary>
    /// <returns>The frame's length; 0 when no frame is waiting.</returns>
    public int ReadInPlace(int queue, out int offset)
    {
        var q = _queues[queue];
        ref var rx = ref q.Rx;
        uint producer = Volatile.Read(ref *rx.Producer);
        while (rx.Cached != producer)
        {
            // struct xdp_desc: addr u64 @0, len u32 @8, options u32 @12.
            byte* desc = rx.Descriptors + (rx.Cached & (RingSize - 1)) * 16;
            ulong address = *(ulong*)desc;
            int length = (int)*(uint*)(desc + 8);
            Volatile.Write(ref *rx.Consumer, ++rx.Cached);
            if (!q.Umem.Received(XdpUmem.ChunkOf(address), q.Owner)) continue;
            q.OnFill--;
            offset = q.Umem.ChunkRegionOffset + (int)address;
            return length;
        }
        offset = 0;
        return 0;
    }

    /// <summary>Copies the next received frame into <paramref name="buffer"/> and gives its chunk straight back to
    /// the fill ring (for a batch outside the UMEM).</summary>
    public override int Read(int queue, Span<byte> buffer)
    {
        var q = _queues[queue];
        ref var rx = ref q.Rx;
        uint producer = Volatile.Read(ref *rx.Producer);
        while (rx.Cached != producer)
        {
            byte* desc = rx.Descriptors + (rx.Cached & (RingSize - 1)) * 16;
            ulong address = *(ulong*)desc;
            int length = (int)*(uint*)(desc + 8);
            rx.Cached++;
            int chunk = XdpUmem.ChunkOf(address);
            bool ours = q.Umem.IsOnFillOf(chunk, q.Owner);
            bool fits = ours && length <= buffer.Length;
            if (fits) new ReadOnlySpan<byte>(q.Umem.Base + address, length).CopyTo(buffer);
            Volatile.Write(ref *rx.Consumer, rx.Cached);
            if (!ours) continue;
            // The chunk goes back to the kernel for the next receive, still this socket's.
            ((ulong*)q.Fill.Descriptors)[q.Fill.Cached & (RingSize - 1)] = (ulong)chunk * ChunkSize;
            Volatile.Write(ref *q.Fill.Producer, ++q.Fill.Cached);
            if (fits) return length;
        }
        return 0;
    }

    /// <summary>
    /// Sends the frame at UMEM address <paramref name="address"/> (an offset from <see cref="XdpUmem.Base"/>, inside
    /// one chunk the engine holds) by descriptor, without copying it; its chunk is in flight until the completion.
    /// </summary>
    /// <returns>0 when queued; -EAGAIN when the tx ring is full; -EINVAL when the chunk is not the engine's.</returns>
    public int TransmitInPlace(int queue, ulong address, int length)
    {
        var q = _queues[queue];
        ref var tx = ref q.Tx;
        if (tx.Cached - Volatile.Read(ref *tx.Consumer) >= RingSize)
        {
            _ = SendTo(q.Fd, null, 0, MsgDontWait, null, 0);
            return -EAgain;
        }
        if (!q.Umem.Sending(XdpUmem.ChunkOf(address), q.Owner)) return -EInval;
        Post(q, address, length);
        q.Unkicked = true;
        return 0;
    }

    /// <summary>
    /// Kicks the kernel to send what <see cref="TransmitInPlace"/> posted: once per batch rather than once per frame.
    /// Copy mode sends at most 32 descriptors per sendto(2) and answers EAGAIN while more wait (or the device is busy),
    /// so it kicks again, a bounded number of times, taking completions back in between; what is left goes with the
    /// next kick.
    /// </summary>
    public void Flush(int queue)
    {
        var q = _queues[queue];
        if (!q.Unkicked) return;
        q.Unkicked = false;
        ref var tx = ref q.Tx;
        for (int kick = 0; kick < RingSize / 32 + 2 && Volatile.Read(ref *tx.Consumer) != tx.Cached; kick++)
        {
            if (SendTo(q.Fd, null, 0, MsgDontWait, null, 0) < 0 && Marshal.GetLastPInvokeError() != EAgain) break;
            Reap(q);
        }
        // Left over (the device was busy): kicked again between batches (<see cref="Service"/>).
        q.Unkicked = Volatile.Read(ref *tx.Consumer) != tx.Cached;
    }

    /// <summary>Copies the frame into a free chunk of the UMEM and sends it (frames from other ports or batches).</summary>
    public override int Write(int queue, ReadOnlySpan<byte> header, ReadOnlySpan<byte> frame)
    {
        var q = _queues[queue];
        if (frame.Length > ChunkSize) return -EMsgSize;
        ref var tx = ref q.Tx;
        Reap(q);
        if (tx.Cached - Volatile.Read(ref *tx.Consumer) >= RingSize || !q.Umem.TryTakeFree(out int chunk))
        {
            _ = SendTo(q.Fd, null, 0, MsgDontWait, null, 0);
            return -EAgain;
        }
        frame.CopyTo(new Span<byte>(q.Umem.Base + (long)chunk * ChunkSize, ChunkSize));
        q.Umem.SendingCopy(chunk, q.Owner);
        Post(q, (ulong)chunk * ChunkSize, frame.Length);
        // Copy mode sends from sendto's context: a copied frame (single, or from another kind of port) is kicked at
        // once, as a TAP's write.
        if (SendTo(q.Fd, null, 0, MsgDontWait, null, 0) < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno is not (EAgain or ENoBufs or EBusy)) return -errno;
        }
        return 0;
    }

    private static void Post(Queue q, ulong address, int length)
    {
        ref var tx = ref q.Tx;
        byte* desc = tx.Descriptors + (tx.Cached & (RingSize - 1)) * 16;
        *(ulong*)desc = address;
        *(uint*)(desc + 8) = (uint)length;
        *(uint*)(desc + 12) = 0;
        Volatile.Write(ref *tx.Producer, ++tx.Cached);
    }

    /// <summary>Closes the socket; once it is bound, the UMEM takes its chunks back (<see cref="XdpUmem.ReclaimClosed"/>).</summary>
    private static void CloseQueue(Queue q)
    {
        foreach (var ring in new[] { q.Rx, q.Tx, q.Fill, q.Completion })
            if (ring.Map != null) Unmap(ring.Map, ring.MapLength);
        q.Rx = q.Tx = q.Fill = q.Completion = default;
        // Out of the UMEM's list of sockets to share before the descriptor number can be reused; its chunks freed
        // only once it is closed.
        if (q.Bound) q.Umem.Unbinding(q.Fd);
        if (q.Fd >= 0) Close(q.Fd);
        if (q.Bound) q.Umem.Closed(q.Owner);
        q.Bound = false;
        q.Fd = -1;
    }

    public override void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        Close(_linkFd); // detaches the program
        for (int q = 0; q < _queues.Length; q++) RemoveFromMap(_mapFd, q);
        foreach (var q in _queues) CloseQueue(q);
        Close(_progFd);
        Close(_mapFd);
    }

    private int _disposed;

    private static nint Bpf(int command, void* attr, int size) => Syscall(SysBpf, command, (nint)attr, size);

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial nint Syscall(long number, nint a, nint b, nint c);

    [LibraryImport("libc", EntryPoint = "socket", SetLastError = true)]
    private static partial int Socket(int domain, int type, int protocol);

    [LibraryImport("libc", EntryPoint = "setsockopt", SetLastError = true)]
    private static partial int SetSocketOption(int fd, int level, int option, void* value, int length);

    [LibraryImport("libc", EntryPoint = "getsockopt", SetLastError = true)]
    private static partial int GetSocketOption(int fd, int level, int option, void* value, int* length);

    [LibraryImport("libc", EntryPoint = "bind", SetLastError = true)]
    private static partial int Bind(int fd, void* address, int length);

    [LibraryImport("libc", EntryPoint = "sendto", SetLastError = true)]
    private static partial nint SendTo(int fd, void* buffer, nuint length, int flags, void* address, int addressLength);

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static partial void* Map(void* address, nuint length, int protection, int flags, int fd, nint offset);

    [LibraryImport("libc", EntryPoint = "munmap")]
    private static partial int Unmap(void* address, nuint length);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);
}
