using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.Pipeline;

namespace FastPath.DataPlane.Telemetry;

/// <summary>
/// Single-producer single-consumer ring of <see cref="FlowRecord"/>s between one forwarding worker and the thread
/// that writes the flow log. The producer never waits: when the ring is full the record is counted in
/// <see cref="Lost"/> and dropped. Sampling keeps 1 flow in <see cref="SampleEvery"/>, chosen by tuple hash so both
/// ends of a sampled connection are kept.
/// </summary>
public sealed class FlowRing
{
    private const ulong SampleSeed = 0x466C_6F77_4C6F_6721UL; // "FlowLog!"
    private readonly FlowRecord[] _records;
    private readonly int _mask;
    private long _head; // next slot the producer writes (written by the producer only)
    private long _tail; // next slot the consumer reads (written by the consumer only)

    public FlowRing(int capacity = 1 << 16, int sampleEvery = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(sampleEvery, 1);
        int size = 16;
        while (size < capacity) size <<= 1;
        _records = new FlowRecord[size];
        // The producer walks the whole ring before it wraps: resident now rather than page by page until it first wraps.
        State.ResidentMemory.Prefault(_records);
        _mask = size - 1;
        SampleEvery = sampleEvery;
    }

    public int SampleEvery { get; }

    public int Capacity => _records.Length;

    /// <summary>The ring's memory, for the test that it is resident from the start.</summary>
    internal ReadOnlySpan<byte> Memory => System.Runtime.InteropServices.MemoryMarshal.AsBytes(_records.AsSpan());

    /// <summary>Records written and not read yet.</summary>
    public long Pending => Volatile.Read(ref _head) - Volatile.Read(ref _tail);

    /// <summary>Records dropped because the ring was full (the writer fell behind).</summary>
    public long Lost { get; private set; }

    /// <summary>Whether the flow with this original tuple is sampled.</summary>
    public bool Sampled(in FlowKey original) => SampleEvery == 1 || original.Hash(SampleSeed) % (ulong)SampleEvery == 0;

    /// <summary>Producer: a connection was created.</summary>
    public void Started(in ConntrackEntry e) => Write(FlowEvent.Start, e, DropReason.None, PortIndex.None);

    /// <summary>Producer: a connection ended.</summary>
    public void Ended(in ConntrackEntry e) => Write(FlowEvent.End, e, DropReason.None, PortIndex.None);

    /// <summary>Producer: a connection is still live when the log closes.</summary>
    public void StillActive(in ConntrackEntry e) => Write(FlowEvent.Active, e, DropReason.None, PortIndex.None);

    /// <summary>Producer: a packet with tuple <paramref name="key"/> (default when it had none) was dropped.</summary>
    public void Dropped(in FlowKey key, DropReason reason, short ingress, long timestamp, int bytes)
    {
        if (!Sampled(key) || !TryClaim(out int slot)) return;
        ref var r = ref _records[slot];
        r = default;
        r.Event = FlowEvent.Drop;
        r.Drop = reason;
        r.Ingress = ingress;
        r.Start = r.End = timestamp;
        r.Original = key;
        r.PacketsOriginal = 1;
        r.BytesOriginal = bytes;
        Publish();
    }

    private void Write(FlowEvent kind, in ConntrackEntry e, DropReason drop, short ingress)
    {
        if (!Sampled(e.Original) || !TryClaim(out int slot)) return;
        _records[slot] = new FlowRecord
        {
            Event = kind,
            Drop = drop,
            State = e.State,
            NatKind = e.NatKind,
            Ingress = ingress,
            Start = e.Created,
            End = e.LastSeen,
            Original = e.Original,
            Reply = e.Reply,
            PacketsOriginal = e.PacketsOriginal,
            BytesOriginal = e.BytesOriginal,
            PacketsReply = e.PacketsReply,
            BytesReply = e.BytesReply,
        };
        Publish();
    }

    private bool TryClaim(out int slot)
    {
        long head = _head;
        slot = (int)(head & _mask);
        if (head - Volatile.Read(ref _tail) < _records.Length) return true;
        Lost++;
        return false;
    }

    // The record is fully written before the consumer can see the new head (release store).
    private void Publish() => Volatile.Write(ref _head, _head + 1);

    /// <summary>Consumer: copies out the next record, false when the ring is empty.</summary>
    public bool TryRead(out FlowRecord record)
    {
        long tail = _tail;
        if (tail == Volatile.Read(ref _head))
        {
            record = default;
            return false;
        }
        record = _records[tail & _mask];
        Volatile.Write(ref _tail, tail + 1);
        return true;
    }
}
