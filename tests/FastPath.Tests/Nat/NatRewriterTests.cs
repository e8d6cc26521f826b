using System.Buffers.Binary;
using System.Net;
using CsCheck;
using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.Nat;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;
using FastPath.Tests.Support;
using static FastPath.Tests.Support.TestFrames;

namespace FastPath.Tests.Nat;

/// <summary>
/// NAT rewrites checked against packets built from scratch with the new addresses and ports and every checksum
/// recomputed by the tests' own byte-by-byte RFC 1071 code (<see cref="TestFrames"/>): the incremental result must
/// be the same bytes.
/// </summary>
public class NatRewriterTests
{
    private static readonly byte[] MacA = Mac("02:00:00:00:00:0a"), MacB = Mac("02:00:00:00:00:0b");

    private sealed record Shape(bool V6, byte Proto, byte[] Src, byte[] Dst, ushort SrcPort, ushort DstPort, byte[] Body, bool ZeroUdp)
    {
        public override string ToString() =>
            $"{(V6 ? "v6" : "v4")} proto {Proto} {new IPAddress(Src)}:{SrcPort} -> {new IPAddress(Dst)}:{DstPort} body {Body.Length}{(ZeroUdp ? " udp-csum-0" : "")}";
    }

    // The whole frame, checksums computed by TestFrames' slow code. Body is the transport header + payload with
    // header fields (ports/identifier, lengths) filled in here.
    private static byte[] Build(Shape s)
    {
        var l4 = (byte[])s.Body.Clone();
        switch (s.Proto)
        {
            case 6:
                BinaryPrimitives.WriteUInt16BigEndian(l4, s.SrcPort);
                BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(2), s.DstPort);
                l4[12] = 0x50;
                break;
            case 17:
                BinaryPrimitives.WriteUInt16BigEndian(l4, s.SrcPort);
                BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(2), s.DstPort);
                BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(4), (ushort)l4.Length);
                break;
            default: // echo request: identifier is both "ports"
                l4[0] = s.Proto == 1 ? (byte)8 : (byte)128;
                l4[1] = 0;
                BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(4), s.SrcPort);
                break;
        }
        string src = new IPAddress(s.Src).ToString(), dst = new IPAddress(s.Dst).ToString();
        byte[] ip = s.V6 ? Ipv6(src, dst, s.Proto, l4) : Ipv4(src, dst, s.Proto, l4);
        if (s.ZeroUdp) { int at = (s.V6 ? 40 : 20) + 6; ip[at] = 0; ip[at + 1] = 0; }
        return Ethernet(MacA, MacB, s.V6 ? (ushort)0x86DD : (ushort)0x0800, ip);
    }

    private static PacketMeta Parse(byte[] frame)
    {
        var m = new PacketMeta();
        Assert.Equal(FastPath.DataPlane.Telemetry.DropReason.None, PacketParser.Parse(frame, ref m));
        return m;
    }

    private static readonly Gen<Shape> Shapes =
        from v6 in Gen.Bool
        from protoPick in Gen.Int[0, 2]
        from src in Gen.Byte.Array[v6 ? 16 : 4]
        from dst in Gen.Byte.Array[v6 ? 16 : 4]
        from sport in Gen.UShort
        from dport in Gen.UShort
        from payload in Gen.Int[0, 300]
        from body in Gen.Byte.Array[(protoPick == 0 ? 20 : 8) + payload]
        from zero in Gen.Int[0, 3]
        let proto = protoPick switch { 0 => (byte)6, 1 => (byte)17, _ => v6 ? (byte)58 : (byte)1 }
        select new Shape(v6, proto, src, dst, sport, proto is 1 or 58 ? sport : dport, body,
            ZeroUdp: !v6 && proto == 17 && zero == 0);

    [Fact]
    public void IncrementalRewriteEqualsRebuiltPacket()
    {
        var gen = from s in Shapes
                  from source in Gen.Bool
                  from addr in Gen.Byte.Array[s.V6 ? 16 : 4]
                  from port in Gen.UShort
                  select (s, source, addr, port);
        gen.Sample(t =>
        {
            var (s, source, addr, port) = t;
            byte[] frame = Build(s);
            var m = Parse(frame);
            var newAddr = s.V6 ? IpAddr.ReadV6(addr) : IpAddr.ReadV4(addr);
            bool ok = source
                ? NatRewriter.RewriteSource(frame, ref m, newAddr, port)
                : NatRewriter.RewriteDestination(frame, ref m, newAddr, port);
            Assert.True(ok);
            bool echo = s.Proto is 1 or 58;
            var want = source
                ? s with { Src = addr, SrcPort = port, DstPort = echo ? port : s.DstPort }
                : s with { Dst = addr, DstPort = port, SrcPort = echo ? port : s.SrcPort };
            Assert.Equal(Build(want), frame);
            if (!echo)
            {
                Assert.Equal(want.SrcPort, m.SourcePort);
                Assert.Equal(want.DstPort, m.DestinationPort);
            }
            // The rewritten packet's tuple is the one conntrack will see.
            Assert.True(FlowKey.TryFromPacket(frame, m, out var key));
            Assert.Equal(want.SrcPort, key.SourcePort);
            Assert.Equal(want.DstPort, key.DestinationPort);
        }, iter: 2000, print: t => t.ToString());
    }

    [Fact]
    public void ZeroUdpChecksumOverIpv4StaysZero()
    {
        var s = new Shape(false, 17, [10, 0, 0, 1], [10, 0, 0, 2], 5353, 53, new byte[20], ZeroUdp: true);
        byte[] frame = Build(s);
        var m = Parse(frame);
        Assert.True(NatRewriter.RewriteSource(frame, ref m, IpAddr.ReadV4([192, 168, 1, 1]), 61000));
        Assert.Equal(0, BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(14 + 20 + 6)));
        Assert.Equal(0, SlowChecksum(frame.AsSpan(14, 20))); // IP header checksum still right
    }

    [Fact]
    public void UpdatedUdpChecksumOfZeroIsSentAsFfff()
    {
        // Search for a rewrite whose new UDP checksum computes to 0x0000: it must go out as 0xFFFF, which is what
        // the rebuilt packet (TestFrames applies RFC 768) carries as well.
        var s = new Shape(false, 17, [10, 0, 0, 1], [10, 0, 0, 2], 1000, 53, new byte[8], ZeroUdp: false);
        for (int port = 0; port < 65536; port++)
        {
            var want = s with { SrcPort = (ushort)port };
            byte[] expected = Build(want);
            if (BinaryPrimitives.ReadUInt16BigEndian(expected.AsSpan(14 + 26)) != 0xFFFF) continue;
            byte[] frame = Build(s);
            var m = Parse(frame);
            Assert.True(NatRewriter.RewriteSource(frame, ref m, IpAddr.ReadV4(s.Src), (ushort)port));
            Assert.Equal(expected, frame);
            return;
        }
        Assert.Fail("no port gives a zero UDP checksum");
    }

    [Fact]
    public void MalformedOrUnsupportedInputIsRefusedUntouched()
    {
        var s = new Shape(false, 6, [10, 0, 0, 1], [10, 0, 0, 2], 1000, 80, new byte[20], false);
        byte[] frame = Build(s);
        var m = Parse(frame);
        byte[] copy = (byte[])frame.Clone();
        Assert.False(NatRewriter.RewriteSource(frame, ref m, IpAddr.ReadV6(new byte[16]), 1)); // family mismatch
        var cut = m;
        cut.L3Length = 2000; // claims more than the frame holds
        Assert.False(NatRewriter.RewriteSource(frame, ref cut, IpAddr.ReadV4([1, 2, 3, 4]), 1));
        var frag = m;
        frag.Flags |= PacketFlags.NonFirstFragment;
        Assert.False(NatRewriter.RewriteDestination(frame, ref frag, IpAddr.ReadV4([1, 2, 3, 4]), 1));
        Assert.False(NatRewriter.RewriteIcmpErrorInner(frame, ref m, true, IpAddr.ReadV4([1, 2, 3, 4]), 1));
        Assert.False(NatRewriter.RewriteSource(frame.AsSpan(0, 30), ref m, IpAddr.ReadV4([1, 2, 3, 4]), 1));
        Assert.Equal(copy, frame);
    }

    // An ICMP port unreachable from a server answering a masqueraded UDP query: pod 10.244.1.10:40000 was SNATed
    // to node 192.168.1.2:61000. The error reaches the node quoting the SNATed datagram; reverse NAT must make it
    // look, to the pod, like an error about the datagram it sent.
    private static byte[] IcmpError(bool v6, string server, string outerDst, string quotedSrc, ushort quotedPort, int quoteCut = 0)
    {
        byte[] quoted = v6
            ? Ipv6(quotedSrc, server, 17, Udp(quotedPort, 53, payload: 24), hopLimit: 63)
            : Ipv4(quotedSrc, server, 17, Udp(quotedPort, 53, payload: 24), ttl: 63);
        if (quoteCut > 0) quoted = quoted[..quoteCut];
        var icmp = new byte[8 + quoted.Length];
        icmp[0] = v6 ? (byte)1 : (byte)3;
        icmp[1] = v6 ? (byte)4 : (byte)3; // port unreachable
        quoted.CopyTo(icmp, 8);
        byte[] ip = v6 ? Ipv6(server, outerDst, 58, icmp) : Ipv4(server, outerDst, 1, icmp, flags: 0);
        return Ethernet(MacA, MacB, v6 ? (ushort)0x86DD : (ushort)0x0800, ip);
    }

    [Theory]
    [InlineData(false, "203.0.113.7", "192.168.1.2", "10.244.1.10")]
    [InlineData(true, "2001:db8::7", "fd00::2", "fd00:244:1::10")]
    public void IcmpErrorQuotingASnatedDatagramIsReverseTranslated(bool v6, string server, string node, string pod)
    {
        byte[] frame = IcmpError(v6, server, node, node, 61000);
        var m = Parse(frame);
        Assert.True((m.Flags & PacketFlags.IcmpError) != 0);
        Assert.True(IpAddr.TryParse(pod, out var podAddr));

        // Outer: destination node → pod (no port on an ICMP error). Inner: the quoted source node:61000 → pod:40000.
        Assert.True(NatRewriter.RewriteDestination(frame, ref m, podAddr, 0));
        Assert.True(NatRewriter.RewriteIcmpErrorInner(frame, ref m, innerSource: true, podAddr, 40000));

        Assert.Equal(IcmpError(v6, server, pod, pod, 40000), frame);

        string path = Path.Combine(Path.GetTempPath(), $"fastpath-nat-icmp-{(v6 ? 6 : 4)}-{Environment.ProcessId}.pcap");
        try
        {
            using (var w = new PcapWriter(path)) w.Write(frame, 1_700_000_000_000_000_000);
            Assert.True(Tshark.Available, "tshark is required");
            Assert.Empty(Tshark.Problems(path));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void IcmpErrorWithTruncatedQuoteRewritesWhatIsThere()
    {
        // RFC 792 promises only 8 bytes of the quoted datagram: the IPv4 header and the UDP header, checksum
        // included, are all there; the outer checksum must still verify.
        byte[] frame = IcmpError(false, "203.0.113.7", "192.168.1.2", "192.168.1.2", 61000, quoteCut: 28);
        var m = Parse(frame);
        Assert.True(NatRewriter.RewriteIcmpErrorInner(frame, ref m, true, IpAddr.ReadV4([10, 244, 1, 10]), 40000));
        Assert.True(ChecksumsValid(frame));
        Assert.Equal(0, SlowChecksum(frame.AsSpan(14 + 28, 20))); // quoted IPv4 header
        Assert.Equal(40000, BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(14 + 28 + 20)));
    }
}
