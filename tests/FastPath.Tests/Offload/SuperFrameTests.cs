using System.Buffers.Binary;
using FastPath.DataPlane.Offload;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;
using FastPath.DataPlane.Telemetry;
using FastPath.Tests.Support;
using static FastPath.Tests.Support.TestFrames;

namespace FastPath.Tests.Offload;

/// <summary>
/// GSO super-frames and partial checksums, as a TAP with offloads hands them over (virtio-net header → metadata), through
/// the real engine on the demo cluster as node-a with the ClusterIP's only endpoint on node-b: DNAT and VXLAN once per
/// super-frame, the partial checksum following the new addresses only, the header rebuilt for the uplink (GSO over a
/// UDP tunnel), and the segments software GSO cuts from it checked byte for byte.
/// </summary>
public sealed class SuperFrameTests : IDisposable
{
    private const int Payload = 20_000, GsoSize = 1398;
    private const int ClientPort = 2, Uplink = 0;
    private readonly TempFolder _dir = new();
    private readonly Engine _engine;

    public SuperFrameTests()
    {
        var snapshot = RemoteBackendCluster.Snapshot(_dir);
        Assert.Equal("default/client", snapshot.Ports[ClientPort].Name);
        _engine = new Engine(new SnapshotHolder(snapshot), conntrackSeed: 1);
    }

    public void Dispose() => _dir.Dispose();

    /// <summary>Client → 10.96.0.20:80 with <see cref="Payload"/> bytes, its TCP checksum partial as the kernel leaves it.</summary>
    private static byte[] SuperFrame(string dst = "10.96.0.20", ushort dport = 80, byte flags = 0x18, int payload = Payload)
    {
        var frame = Ethernet(GatewayMac, Mac("02:42:0a:f4:01:0a"), 0x0800, Ipv4("10.244.1.10", dst, 6, Tcp(40000, dport, flags, payload)));
        MakePartial(frame, 14 + 20);
        return frame;
    }

    /// <summary>Replaces a TCP/UDP checksum with the folded pseudo-header sum (CHECKSUM_PARTIAL).</summary>
    private static void MakePartial(byte[] frame, int l4, int csumOffset = 16)
    {
        int l3 = 14;
        int l4Length = BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(l3 + 2)) - (l4 - l3);
        ushort partial = (ushort)~SlowChecksum([], PseudoSum(frame[(l3 + 12)..(l3 + 16)], frame[(l3 + 16)..(l3 + 20)], frame[l3 + 9], l4Length));
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(l4 + csumOffset), partial);
    }

    /// <summary>The virtio-net header a TAP puts in front of such a frame.</summary>
    private static byte[] Header(byte gsoType, ushort gsoSize, ushort csumStart, ushort csumOffset = 16, ushort outer = 0, ushort innerNh = 0)
    {
        var h = new byte[VirtioNetHeader.TunnelLength];
        h[0] = VirtioNetHeader.FlagNeedsChecksum;
        h[1] = gsoType;
        BinaryPrimitives.WriteUInt16LittleEndian(h.AsSpan(4), gsoSize);
        BinaryPrimitives.WriteUInt16LittleEndian(h.AsSpan(6), csumStart);
        BinaryPrimitives.WriteUInt16LittleEndian(h.AsSpan(8), csumOffset);
        BinaryPrimitives.WriteUInt16LittleEndian(h.AsSpan(20), outer);
        BinaryPrimitives.WriteUInt16LittleEndian(h.AsSpan(22), innerNh);
        return h;
    }

    private PacketBatch Process(params (short Port, byte[] Frame, byte[] Header)[] frames)
    {
        var batch = new PacketBatch(frames.Length, PacketBatch.SuperFrameSlotSize);
        for (int i = 0; i < frames.Length; i++)
        {
            frames[i].Frame.CopyTo(batch.ReceiveArea(i));
            batch.SetReceived(i, frames[i].Frame.Length, 1_000_000_000L * (1000 + i), i + 1, frames[i].Port);
            Assert.True(VirtioNetHeader.Read(frames[i].Header, ref batch.Meta[i]));
        }
        batch.Count = frames.Length;
        _engine.Process(batch);
        return batch;
    }

    /// <summary>The frame with its partial checksum finished in software, as the receiver would.</summary>
    private static byte[] Finished(PacketBatch batch, int i)
    {
        var m = batch.Meta[i];
        var frame = batch.Frame(i).ToArray();
        Assert.True(ChecksumOffload.Complete(frame, ref m, ChecksumOffload.TransportStart(in m)));
        return frame;
    }

    [Fact]
    public void ASuperFrameToAClusterIpIsTranslatedAndEncapsulatedOnceAndLeavesAsTunnelGso()
    {
        var batch = Process((ClientPort, SuperFrame(), Header(1, GsoSize, 34)));
        var m = batch.Meta[0];
        Assert.Equal(DropReason.None, m.Drop);
        Assert.Equal(Uplink, m.EgressPort);
        Assert.Equal(GsoKind.TcpV4, m.Gso);
        Assert.Equal(GsoSize, m.GsoSize);
        Assert.Equal(OffloadFlags.ChecksumPartial | OffloadFlags.Encapsulated, m.Offload);
        Assert.Equal(14 + 20 + 8 + 8 + 14 + 20, ChecksumOffload.TransportStart(in m));
        Assert.Equal(50 + 14 + 20 + 20 + Payload, m.Length);

        var header = new byte[VirtioNetHeader.TunnelLength];
        VirtioNetHeader.Write(header, in m);
        Assert.Equal(VirtioNetHeader.FlagNeedsChecksum, header[0]);
        Assert.Equal(1 | VirtioNetHeader.GsoUdpTunnelV4, header[1]);
        Assert.Equal(GsoSize, BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(4)));
        Assert.Equal(84, BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(6)));
        Assert.Equal(16, BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(8)));
        Assert.Equal(34, BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(20)));
        Assert.Equal(64, BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(22)));

        // Outer: node-a → node-b, UDP 8472, checksum 0 (it would differ per segment); inner: DNATed to web-3:8080.
        var frame = batch.Frame(0).ToArray();
        Assert.Equal(Ip("192.168.56.12"), frame[30..34]);
        Assert.Equal(8472, BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(36)));
        Assert.Equal(0, BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(40)));
        Assert.Equal(Ip("10.244.2.11"), frame[(50 + 30)..(50 + 34)]);
        Assert.Equal(8080, BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(84 + 2)));
        // The partial checksum followed the new address only: finished over the whole super-frame, it verifies.
        Assert.True(ChecksumsValid(Finished(batch, 0).AsSpan(50)));
    }

    [Fact]
    public void SoftwareGsoCutsTheEncapsulatedSuperFrameIntoValidSegmentsCarryingThePayloadInOrder()
    {
        var batch = Process((ClientPort, SuperFrame(), Header(1, GsoSize, 34)));
        var m = batch.Meta[0];
        var sink = new Collect();
        int count = GsoSegmenter.Segment(batch.Frame(0), in m, new byte[PacketBatch.SuperFrameSlotSize], ref sink);

        Assert.Equal((Payload + GsoSize - 1) / GsoSize, count);
        var payload = new List<byte>();
        uint seq = 1000;
        for (int i = 0; i < count; i++)
        {
            var s = sink.Segments[i];
            bool last = i == count - 1;
            Assert.Equal(0, SlowChecksum(s.AsSpan(14, 20))); // outer IPv4 header
            Assert.Equal(s.Length - 14, BinaryPrimitives.ReadUInt16BigEndian(s.AsSpan(16)));
            Assert.Equal(s.Length - 34, BinaryPrimitives.ReadUInt16BigEndian(s.AsSpan(38))); // outer UDP length
            var inner = s.AsSpan(50);
            Assert.True(ChecksumsValid(inner), $"segment {i}");
            Assert.True(inner.Length - 54 <= GsoSize);
            Assert.Equal(seq, BinaryPrimitives.ReadUInt32BigEndian(inner[38..]));
            Assert.Equal(last ? 0x18 : 0x10, inner[47]); // PSH only on the last
            seq += (uint)(inner.Length - 54);
            payload.AddRange(inner[54..].ToArray());
        }
        Assert.Equal(Tcp(40000, 80, 0x18, Payload)[20..], payload.ToArray());
    }

    private struct Collect : ISegmentSink
    {
        public List<byte[]> Segments;
        public void Emit(ReadOnlySpan<byte> segment) => (Segments ??= []).Add(segment.ToArray());
    }

    [Fact]
    public void TheRepliesTunnelSuperFrameIsDecapsulatedAndReverseTranslatedWithItsChecksumStillPartial()
    {
        // Open the connection with a SYN first, then web-3's reply super-frame arrives from node-b as tunnel GSO.
        var syn = Ethernet(GatewayMac, Mac("02:42:0a:f4:01:0a"), 0x0800, Ipv4("10.244.1.10", "10.96.0.20", 6, Tcp(40000, 80, 0x02)));
        Assert.Equal(DropReason.None, Process((ClientPort, syn, new byte[VirtioNetHeader.TunnelLength])).Meta[0].Drop);

        var inner = Ethernet(Mac("02:00:00:00:01:01"), Mac("02:00:00:00:02:01"), 0x0800, Ipv4("10.244.2.11", "10.244.1.10", 6, Tcp(8080, 40000, 0x18, Payload)));
        MakePartial(inner, 34);
        var outer = Ethernet(Mac("02:00:00:00:01:01"), Mac("02:00:00:00:02:01"), 0x0800,
            Ipv4("192.168.56.12", "192.168.56.11", 17, RemoteBackendCluster.Vxlan(inner), flags: 0));
        var batch = Process((Uplink, outer, Header(1 | VirtioNetHeader.GsoUdpTunnelV4, GsoSize, 84, outer: 34, innerNh: 64)));
        var m = batch.Meta[0];
        Assert.Equal(DropReason.None, m.Drop);
        Assert.Equal(ClientPort, m.EgressPort);
        Assert.Equal(OffloadFlags.ChecksumPartial, m.Offload);
        Assert.Equal(GsoKind.TcpV4, m.Gso);
        var frame = Finished(batch, 0);
        Assert.Equal(Ip("10.96.0.20"), frame[26..30]);
        Assert.Equal(80, BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(34)));
        Assert.True(ChecksumsValid(frame));
    }

    [Theory]
    [InlineData(1398, DropReason.None)] // 20 + 20 + 1398 = 1438 ≤ 1450 (1500 - VXLAN)
    [InlineData(1420, DropReason.MtuExceeded)] // 1460 > 1450: fragmentation needed, for the segment size
    public void TheMtuAppliesToTheSegmentsNotToTheSuperFrame(int gsoSize, DropReason expected)
    {
        var batch = Process((ClientPort, SuperFrame(), Header(1, (ushort)gsoSize, 34)));
        var m = batch.Meta[0];
        Assert.Equal(expected, m.Drop);
        if (expected == DropReason.None) return;
        // The ICMP error goes back to the client as a whole packet: no offloads, valid checksums, next-hop MTU 1450.
        Assert.Equal(ClientPort, m.EgressPort);
        Assert.Equal(OffloadFlags.None, m.Offload);
        Assert.Equal(GsoKind.None, m.Gso);
        var icmp = batch.Frame(0).ToArray();
        Assert.Equal(3, icmp[34]);
        Assert.Equal(4, icmp[35]);
        Assert.Equal(1450, BinaryPrimitives.ReadUInt16BigEndian(icmp.AsSpan(40)));
        Assert.True(ChecksumsValid(icmp));
    }

    [Fact]
    public void APartialChecksumAtAnOffsetThatIsNotTheTransportChecksumIsFinishedInSoftware()
    {
        // UDP to the DNS port of the ClusterIP: a partial checksum that names the wrong field (offset 4) is finished
        // where it says, as skb_checksum_help would, and the packet goes on as an ordinary one.
        var frame = Ethernet(GatewayMac, Mac("02:42:0a:f4:01:0a"), 0x0800, Ipv4("10.244.1.10", "10.244.2.11", 17, Udp(5000, 53, 100)));
        MakePartial(frame, 34, csumOffset: 6);
        var batch = Process((ClientPort, frame, Header(0, 0, 34, csumOffset: 4)));
        Assert.Equal(DropReason.None, batch.Meta[0].Drop);
        Assert.Equal(OffloadFlags.None, batch.Meta[0].Offload & OffloadFlags.ChecksumPartial);
    }

    [Fact]
    public void AVxlanPacketWhoseOuterUdpChecksumIsPartialIsDecapsulatedAsAWholeOne()
    {
        // Found by the replay-vs-live differential: pod traffic from node-b whose outer UDP checksum was partial (a
        // local stack's VXLAN with checksum offload hands it over so) was dropped as malformed live — decapsulation
        // carried the outer checksum's offload over to the inner packet, where its offset pointed before the frame —
        // while replay, given the same packet whole, forwarded it.
        var inner = Ethernet(Mac("02:00:00:00:01:01"), Mac("02:00:00:00:02:01"), 0x0800, Ipv4("10.244.2.11", "10.244.1.10", 6, Tcp(8080, 40004, 0x12)));
        var outer = Ethernet(Mac("02:00:00:00:01:01"), Mac("02:00:00:00:02:01"), 0x0800,
            Ipv4("192.168.56.12", "192.168.56.11", 17, RemoteBackendCluster.Vxlan(inner), flags: 0));
        var partial = (byte[])outer.Clone();
        MakePartial(partial, 34, csumOffset: 6);
        var batch = Process((Uplink, partial, Header(0, 0, 34, csumOffset: 6)), (Uplink, outer, new byte[VirtioNetHeader.TunnelLength]));
        Assert.Equal(DropReason.None, batch.Meta[0].Drop);
        Assert.Equal(ClientPort, batch.Meta[0].EgressPort);
        Assert.Equal(OffloadFlags.None, batch.Meta[0].Offload);
        Assert.Equal(DropReason.None, batch.Meta[1].Drop);
        Assert.Equal(Convert.ToHexString(batch.Frame(1)), Convert.ToHexString(batch.Frame(0)));
        Assert.True(ChecksumsValid(batch.Frame(0)));
    }

    [Fact]
    public void AnIcmpErrorQuotesThePacketWithItsPartialChecksumFinished()
    {
        // Found by the replay-vs-live differential (fuzz live-diff): UDP to an address no route covers, its checksum
        // partial as it came from a TAP, is answered with a network unreachable that quoted the checksum field as it
        // was (the pseudo-header sum), where replay, given the same packet whole, quoted the real checksum. The error
        // must not depend on how the packet's checksum travelled.
        var whole = Ethernet(GatewayMac, Mac("02:42:0a:f4:01:0a"), 0x0800, Ipv4("10.244.1.10", "10.244.9.9", 17, Udp(1, 2, 0)));
        var partial = (byte[])whole.Clone();
        MakePartial(partial, 34, csumOffset: 6);
        Assert.NotEqual(whole, partial);
        var batch = Process((ClientPort, partial, Header(0, 0, 34, csumOffset: 6)));
        Assert.Equal(DropReason.NoRoute, batch.Meta[0].Drop);
        Assert.Equal(ClientPort, batch.Meta[0].EgressPort);
        var fromPartial = batch.Frame(0).ToArray();
        var plain = new PacketBatch(1);
        whole.CopyTo(plain.ReceiveArea(0));
        plain.SetReceived(0, whole.Length, 1_000_000_000L * 2000, 9, ClientPort);
        plain.Count = 1;
        _engine.Process(plain);
        Assert.Equal(DropReason.NoRoute, plain.Meta[0].Drop);
        Assert.Equal(Convert.ToHexString(plain.Frame(0)), Convert.ToHexString(fromPartial));
        Assert.True(ChecksumsValid(fromPartial));
        Assert.True(ChecksumsValid([.. whole[..14], .. fromPartial[42..]])); // the quoted datagram, behind an Ethernet header
    }

    [Fact]
    public void ASuperFrameWhosePartialChecksumDoesNotNameItsTcpHeaderIsMalformed()
    {
        var batch = Process((ClientPort, SuperFrame(), Header(1, GsoSize, 40)));
        Assert.Equal(DropReason.Malformed, batch.Meta[0].Drop);
    }

    [Theory]
    [InlineData(2)] // no such GSO type
    [InlineData(1 | VirtioNetHeader.GsoUdpTunnelV6)] // a tunnel over IPv6: not our underlay
    public void AHeaderTheEngineCannotHonourIsRefused(byte gsoType)
    {
        var m = default(PacketMeta);
        Assert.False(VirtioNetHeader.Read(Header(gsoType, GsoSize, 34), ref m));
    }

    [Fact]
    public void UdpSegmentationOffloadCutsDatagramsOfGsoSize()
    {
        var frame = Ethernet(GatewayMac, Mac("02:42:0a:f4:01:0a"), 0x0800, Ipv4("10.244.1.10", "10.244.2.11", 17, Udp(5000, 5001, 3000)));
        MakePartial(frame, 34, csumOffset: 6);
        var batch = Process((ClientPort, frame, Header((byte)GsoKind.UdpL4, 1000, 34, csumOffset: 6)));
        var m = batch.Meta[0];
        Assert.Equal(DropReason.None, m.Drop);
        var sink = new Collect();
        Assert.Equal(3, GsoSegmenter.Segment(batch.Frame(0), in m, new byte[PacketBatch.SuperFrameSlotSize], ref sink));
        var payload = new List<byte>();
        foreach (var s in sink.Segments)
        {
            Assert.True(ChecksumsValid(s.AsSpan(50)));
            Assert.Equal(8 + 1000, BinaryPrimitives.ReadUInt16BigEndian(s.AsSpan(50 + 34 + 4)));
            payload.AddRange(s[(50 + 42)..]);
        }
        Assert.Equal(Udp(5000, 5001, 3000)[8..], payload.ToArray());
    }
}
