using System.Buffers.Binary;
using FastPath.DataPlane.Offload;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;
using FastPath.DataPlane.Telemetry;

namespace FastPath.Fuzz;

public static partial class FuzzTargets
{
    private static Engine? _superEngine;
    private static PacketBatch? _superBatch;
    private static byte[]? _segmentScratch;
    private static long _superClock;

    /// <summary>
    /// What a TAP with offloads hands the engine: a 1-byte ingress selector, a 24-byte virtio_net_hdr_v1_hash_tunnel
    /// and a frame of up to 64 KiB, read as TapPort reads it (<see cref="VirtioNetHeader.Read"/>, then the engine's
    /// <see cref="ChecksumOffload.Admit"/>, NAT and VXLAN), then sent on as TapPort sends it. Invariants: a verdict and
    /// an existing port; the emitted frame inside its slot; a GSO packet still carries the partial checksum the header
    /// needs and its header reads back to the same offloads; a partial checksum can be completed (the TAP would
    /// otherwise count a transmit error for a packet the engine accepted); and every segment software GSO cuts is a
    /// packet that parses, with a valid IPv4 header and transport checksum (inner and outer for VXLAN).
    /// </summary>
    public static void Virtio(ReadOnlySpan<byte> input)
    {
        if (input.Length < 1 + VirtioNetHeader.TunnelLength) return;
        var engine = _superEngine ??= new Engine(new SnapshotHolder(DemoSnapshot()), conntrackSeed: 1);
        var batch = _superBatch ??= new PacketBatch(1, PacketBatch.SuperFrameSlotSize);
        var frame = input[(1 + VirtioNetHeader.TunnelLength)..];
        int length = Math.Min(frame.Length, batch.ReceiveLength);
        frame[..length].CopyTo(batch.ReceiveArea(0));
        short port = (short)((input[0] % (engine.Snapshot.PortCount + 2)) - 2);
        _superClock++;
        batch.SetReceived(0, length, _superClock * 1_000_000L, _superClock, port == PortIndex.None ? PortIndex.Auto : port);
        ref var m = ref batch.Meta[0];
        if (!VirtioNetHeader.Read(input.Slice(1, VirtioNetHeader.TunnelLength), ref m)) m.Drop = DropReason.Malformed;
        batch.Count = 1;
        engine.Process(batch);

        if (m.Drop == DropReason.None && m.EgressPort < 0) throw new InvalidOperationException("neither forwarded nor dropped");
        if (m.EgressPort >= engine.Snapshot.PortCount) throw new InvalidOperationException($"egress port {m.EgressPort} does not exist");
        if (m.EgressPort < 0 || m.Offload == OffloadFlags.None) return;
        if (m.Offset < batch.SlotStart(0) || m.Offset + m.Length > batch.SlotStart(0) + batch.SlotBytes)
            throw new InvalidOperationException("emitted bytes outside the slot");
        if (m.Gso != GsoKind.None && (m.Offload & OffloadFlags.ChecksumPartial) == 0)
            throw new InvalidOperationException($"a {m.Gso} super-frame left without a partial checksum: no virtio-net header can say it");

        Span<byte> header = stackalloc byte[VirtioNetHeader.TunnelLength];
        VirtioNetHeader.Write(header, in m);
        var back = new PacketMeta();
        if (!VirtioNetHeader.Read(header, ref back) || back.Gso != m.Gso || back.GsoSize != (m.Gso == GsoKind.None ? 0 : m.GsoSize)
            || ((back.Offload ^ m.Offload) & (OffloadFlags.ChecksumPartial | OffloadFlags.Encapsulated)) != 0 && m.Gso != GsoKind.None)
            throw new InvalidOperationException($"the written virtio-net header does not read back ({m.Gso}/{m.GsoSize}/{m.Offload} → {back.Gso}/{back.GsoSize}/{back.Offload})");

        var out_ = batch.Frame(0);
        if (m.Gso != GsoKind.None)
        {
            _segmentScratch ??= new byte[PacketBatch.SuperFrameSlotSize];
            var sink = new SegmentCheck { Encapsulated = (m.Offload & OffloadFlags.Encapsulated) != 0, OuterL4 = m.L4Offset };
            GsoSegmenter.Segment(out_, in m, _segmentScratch, ref sink);
        }
        else if ((m.Offload & OffloadFlags.ChecksumPartial) != 0 && !ChecksumOffload.Complete(out_, ref m, ChecksumOffload.TransportStart(in m)))
            throw new InvalidOperationException($"partial checksum at {ChecksumOffload.TransportStart(in m)}+{m.ChecksumOffset} cannot be completed in a {out_.Length}-byte frame");
    }

    /// <summary>Checks each segment software GSO emits: it parses, and its checksums (all recomputed by the segmenter) are valid.</summary>
    private struct SegmentCheck : ISegmentSink
    {
        public bool Encapsulated;
        public int OuterL4;

        public readonly void Emit(ReadOnlySpan<byte> segment)
        {
            var m = new PacketMeta { Length = segment.Length };
            var drop = PacketParser.Parse(segment, ref m);
            if (drop != DropReason.None) throw new InvalidOperationException($"a GSO segment does not parse: {DropReasons.Name(drop)}");
            if (Encapsulated)
            {
                if (m.L3 != L3Kind.Ipv4 || !Checksum.Ipv4HeaderValid(segment.Slice(m.L3Offset, (segment[m.L3Offset] & 0x0F) * 4)))
                    throw new InvalidOperationException("a VXLAN GSO segment's outer IPv4 header is invalid");
                int inner = OuterL4 + UdpHeader.Length + VxlanHeader.Length;
                var innerFrame = segment[inner..];
                m = new PacketMeta { Length = innerFrame.Length };
                if ((drop = PacketParser.Parse(innerFrame, ref m)) != DropReason.None)
                    throw new InvalidOperationException($"a VXLAN GSO segment's inner frame does not parse: {DropReasons.Name(drop)}");
                Verify(innerFrame, in m);
            }
            else Verify(segment, in m);
        }

        private static void Verify(ReadOnlySpan<byte> frame, in PacketMeta m)
        {
            if ((m.Flags & (PacketFlags.HasL4 | PacketFlags.Fragment)) != PacketFlags.HasL4) return; // the super-frame's own IP flags
            var l3 = frame.Slice(m.L3Offset, m.L3Length);
            var l4 = frame[m.L4Offset..(m.L3Offset + m.L3Length)];
            bool valid = m.L3 == L3Kind.Ipv4
                ? Checksum.Ipv4HeaderValid(l3[..((l3[0] & 0x0F) * 4)])
                  && Checksum.TransportV4Valid(BinaryPrimitives.ReadUInt32BigEndian(l3[12..]), BinaryPrimitives.ReadUInt32BigEndian(l3[16..]), m.IpProtocol, l4)
                : Checksum.TransportV6Valid(l3.Slice(8, 16), l3.Slice(24, 16), m.IpProtocol, l4);
            if (!valid) throw new InvalidOperationException($"a GSO segment ({m.L3}, protocol {m.IpProtocol}) has a bad checksum");
        }
    }
}
