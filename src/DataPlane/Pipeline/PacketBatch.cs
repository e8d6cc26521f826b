namespace FastPath.DataPlane.Pipeline;

/// <summary>
/// A batch of packet buffers and their metadata, allocated once and reused for every batch (no per-packet objects).
/// Each slot has <see cref="Headroom"/> bytes in front of the frame so a stage can prepend headers (VXLAN, ICMP
/// errors quoting the packet) without copying, like DPDK's mbuf headroom.
/// </summary>
public sealed class PacketBatch
{
    /// <summary>Bytes reserved in front of each received frame.</summary>
    public const int Headroom = 128;
    /// <summary>Largest frame a slot holds: a 9216-byte jumbo payload plus L2 headers.</summary>
    public const int MaxFrameLength = 9216 + 64;
    /// <summary>
    /// Slot stride. Not a power of two on purpose: 64 KiB or 8 KiB strides put every slot's headers into the same
    /// L1 sets; 9728 (mod 4096 = 1536) spreads them.
    /// </summary>
    public const int SlotSize = 9728;

    /// <summary>
    /// Slot stride for live ports with offloads: a 64 KB GSO super-frame (IPv4 total length or IPv6 payload length at
    /// most 65535, plus L2 and a VXLAN header in front) behind the headroom. 66,176 mod 4096 = 640, for the same
    /// reason as <see cref="SlotSize"/>.
    /// </summary>
    public const int SuperFrameSlotSize = 66_176;

    public const int DefaultCapacity = 64;

    private readonly byte[] _arena;
    private readonly int _slotSize;

    /// <param name="slotSize">Bytes per slot, headroom included: <see cref="SlotSize"/> (jumbo frames) or
    /// <see cref="SuperFrameSlotSize"/> (GSO super-frames).</param>
    public PacketBatch(int capacity = DefaultCapacity, int slotSize = SlotSize)
        : this(capacity, slotSize, GC.AllocateUninitializedArray<byte>(capacity * slotSize, pinned: true))
    {
    }

    /// <param name="arena">A pinned array of at least <paramref name="capacity"/> × <paramref name="slotSize"/> bytes
    /// whose start holds the slots; frames may also lie beyond them (an AF_XDP UMEM's chunks, <c>Ports/XdpUmem</c>),
    /// since a packet's <see cref="PacketMeta.Offset"/> is where its frame is, wherever in the arena.</param>
    public PacketBatch(int capacity, int slotSize, byte[] arena)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(slotSize, SlotSize);
        ArgumentOutOfRangeException.ThrowIfLessThan(arena.Length, capacity * slotSize);
        Capacity = capacity;
        _slotSize = slotSize;
        _arena = arena;
        Meta = new PacketMeta[capacity];
    }

    public int Capacity { get; }

    /// <summary>Bytes a source may write into one slot behind the headroom.</summary>
    public int ReceiveLength => _slotSize - Headroom;

    /// <summary>Bytes per slot, headroom included.</summary>
    public int SlotBytes => _slotSize;
    public int Count { get; set; }
    public PacketMeta[] Meta { get; }
    public byte[] Arena => _arena;

    /// <summary>The writable area where a source puts slot <paramref name="index"/>'s frame.</summary>
    public Span<byte> ReceiveArea(int index) => _arena.AsSpan(index * _slotSize + Headroom, _slotSize == SlotSize ? MaxFrameLength : ReceiveLength);

    /// <summary>Resets slot <paramref name="index"/> for a frame of <paramref name="length"/> bytes just received.</summary>
    public void SetReceived(int index, int length, long timestamp, long inputIndex, short ingressPort) =>
        SetReceivedAt(index, index * _slotSize + Headroom, length, timestamp, inputIndex, ingressPort);

    /// <summary>Resets slot <paramref name="index"/> for a frame received at <paramref name="offset"/> of the arena
    /// rather than into the slot (a UMEM chunk; at least <see cref="Headroom"/> bytes of the chunk in front of it).</summary>
    public void SetReceivedAt(int index, int offset, int length, long timestamp, long inputIndex, short ingressPort)
    {
        ref var m = ref Meta[index];
        m = default;
        m.Offset = offset;
        m.Length = length;
        m.Timestamp = timestamp;
        m.InputIndex = inputIndex;
        m.IngressPort = ingressPort;
        m.EgressPort = PortIndex.None;
    }

    /// <summary>
    /// Makes this batch a copy of <paramref name="source"/>'s packets as received (frames into the same slots, metadata
    /// as is), so the same input can be processed twice (fastpath diff) or kept past processing, which rewrites frames in
    /// place (replay --pcapng). Copies each frame's bytes only, not whole slots.
    /// </summary>
    public void CopyFrom(PacketBatch source)
    {
        if (source.Count > Capacity) throw new ArgumentException($"batch of {source.Count} does not fit {Capacity} slots", nameof(source));
        Array.Copy(source.Meta, Meta, source.Count);
        for (int i = 0; i < source.Count; i++)
        {
            ref var m = ref Meta[i];
            Buffer.BlockCopy(source._arena, m.Offset, _arena, m.Offset, m.Length);
        }
        Count = source.Count;
    }

    /// <summary>The current frame of slot <paramref name="index"/>.</summary>
    public Span<byte> Frame(int index)
    {
        ref var m = ref Meta[index];
        return _arena.AsSpan(m.Offset, m.Length);
    }

    /// <summary>The whole slot (headroom included), for stages that move the frame start.</summary>
    public Span<byte> Slot(int index) => _arena.AsSpan(index * _slotSize, _slotSize);

    public int SlotStart(int index) => index * _slotSize;

    /// <summary>Packets of the processed batch that leave through a port (the rest were dropped).</summary>
    public int CountEmitted()
    {
        int emitted = 0;
        for (int i = 0; i < Count; i++)
            if (Meta[i].EgressPort >= 0) emitted++;
        return emitted;
    }
}
