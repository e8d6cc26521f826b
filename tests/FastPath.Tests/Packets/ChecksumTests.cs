using System.Buffers.Binary;
using CsCheck;
using FastPath.DataPlane.Packets;
using Xunit;
using FastPath.Tests.Support;

namespace FastPath.Tests.Packets;

[Collection(AllocationCollection.Name)]
public class ChecksumTests
{
    // Property iterations: "a few thousand" per property, enough to hit every SIMD/tail split many times.
    private const long Iterations = 5_000;

    // ---- Known vectors (real bytes, not produced by the code under test) ----

    [Fact]
    public void Rfc1071Section3Example()
    {
        // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        byte[] data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        Assert.Equal(0xddf2u, Checksum.SumScalar(data));
        Assert.Equal(0xddf2u, Checksum.Sum(data));
        Assert.Equal((ushort)0x220d, Checksum.Fold(Checksum.Sum(data)));
    }

    [Theory]
    // tcpdump_ipv4_tcp_http_xml.pcap frame 1 (after the 802.1Q tag): checksum 0x1927.
    [InlineData("4500028559ef4000800619270a150b5e0a726578", 0x1927)]
    // tcpdump_dns_udp.pcap frame 1: checksum 0x94ae.
    [InlineData("4500005459cd0000401194aec0a8010bd157f912", 0x94ae)]
    // tcpdump_tcp-handshake-nano.pcap frame 1: checksum 0xdb5f.
    [InlineData("4500003c29a940004006db5f839bd7458974515e", 0xdb5f)]
    public void Ipv4HeaderFromCaptures(string hex, int expected)
    {
        byte[] header = Convert.FromHexString(hex);
        Assert.True(Checksum.Ipv4HeaderValid(header));
        // The field is treated as zero whatever it holds.
        Assert.Equal((ushort)expected, Checksum.Ipv4Header(header));
        header[10] = 0; header[11] = 0;
        Assert.Equal((ushort)expected, Checksum.Ipv4Header(header));
        Assert.False(Checksum.Ipv4HeaderValid(header));
    }

    [Fact]
    public void UdpV4FromCapture()
    {
        // tcpdump_dns_udp.pcap frame 1: 192.168.1.11 → 209.87.249.18, UDP checksum 0x7824.
        byte[] udp = Convert.FromHexString(
            "abbe003500407824593401200001000000000001037777770774637064756d70036f72670000010001000029100000000000000c000a000842f5d00996f90b13");
        uint src = 0xc0a8010b, dst = 0xd157f912;
        Assert.True(Checksum.TransportV4Valid(src, dst, Checksum.ProtocolUdp, udp));
        udp[6] = 0; udp[7] = 0;
        Assert.Equal((ushort)0x7824, Checksum.TransportV4(src, dst, Checksum.ProtocolUdp, udp));
    }

    [Fact]
    public void TcpV4FromCapture()
    {
        // tcpdump_tcp-handshake-nano.pcap frame 1: SYN 131.155.215.69 → 137.116.81.94, checksum 0x50c4.
        byte[] tcp = Convert.FromHexString(
            "b64000502f842acb00000000a0026a4050c40000020405500402080a436a03620000000001030307");
        uint src = 0x839bd745, dst = 0x8974515e;
        Assert.True(Checksum.TransportV4Valid(src, dst, Checksum.ProtocolTcp, tcp));
        tcp[16] = 0; tcp[17] = 0;
        Assert.Equal((ushort)0x50c4, Checksum.TransportV4(src, dst, Checksum.ProtocolTcp, tcp));
    }

    [Fact]
    public void Icmpv6FromCapture()
    {
        // tcpdump_icmpv6.pcap frame 2: MLDv2 report behind a hop-by-hop header; the pseudo-header carries
        // next header 58 and the ICMPv6 length, not the extension header's (RFC 8200 §8.1). Checksum 0x1fc5.
        byte[] src = Convert.FromHexString("fe80000000000000021517fffecce546");
        byte[] dst = Convert.FromHexString("ff020000000000000000000000000016");
        byte[] icmp = Convert.FromHexString("8f001fc50000000104000000ff0200000000000000000db811223344");
        Assert.True(Checksum.TransportV6Valid(src, dst, Checksum.ProtocolIcmpV6, icmp));
        icmp[2] = 0; icmp[3] = 0;
        Assert.Equal((ushort)0x1fc5, Checksum.Icmpv6(src, dst, icmp));
    }

    [Fact]
    public void Rfc1624Section4Example()
    {
        // RFC 1624 §4: HC = 0xDD2F, m = 0x5555 → m' = 0x3285; recomputation gives 0x0000, and so must eqn. 3
        // (RFC 1141's eqn. 2 gave 0xFFFF here).
        Assert.Equal((ushort)0x0000, Checksum.Update16(0xDD2F, 0x5555, 0x3285));
    }

    [Fact]
    public void UdpZeroIsTransmittedAsAllOnes()
    {
        Assert.Equal((ushort)0xFFFF, Checksum.UdpTransmitted(0));
        Assert.Equal((ushort)0x1234, Checksum.UdpTransmitted(0x1234));
        // A UDP checksum field of 0 means "none" over IPv4 (RFC 768) and verifies.
        byte[] udp = [0, 1, 0, 2, 0, 9, 0, 0, 0x42];
        Assert.True(Checksum.TransportV4Valid(1, 2, Checksum.ProtocolUdp, udp));
    }

    [Fact]
    public void TtlDecrementRefusesAtOne()
    {
        byte[] header = Convert.FromHexString("4500003c29a940000106db5f839bd7458974515e");
        header[10] = 0; header[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(10), Checksum.Ipv4Header(header));
        byte[] before = (byte[])header.Clone();
        Assert.False(Checksum.Ipv4DecrementTtl(header));
        Assert.Equal(before, header);
    }

    // ---- Sum vs the scalar reference ----

    [Fact]
    public void SumMatchesScalarForEveryShortLengthAndOffset()
    {
        // Every length that exercises each SIMD/tail boundary, at each alignment, with all-ones data (maximal
        // carries), zeros and random bytes.
        var rng = new Random(1071);
        byte[] buf = new byte[300 + 64];
        foreach (int fill in new[] { 0xFF, 0x00, -1 })
        {
            if (fill < 0) rng.NextBytes(buf); else Array.Fill(buf, (byte)fill);
            for (int offset = 0; offset < 33; offset++)
                for (int length = 0; length <= 300; length++)
                {
                    var span = buf.AsSpan(offset, length);
                    Assert.Equal(Checksum.SumScalar(span), Checksum.Sum(span));
                    Assert.Equal(Checksum.SumScalar(span, 0xFFFF_FFFF), Checksum.Sum(span, 0xFFFF_FFFF));
                }
        }
    }

    [Fact]
    public void SumMatchesScalarAtMaximumIpLength()
    {
        byte[] ones = new byte[65535 + 7];
        Array.Fill(ones, (byte)0xFF);
        byte[] random = new byte[65535 + 7];
        new Random(65535).NextBytes(random);
        foreach (var buf in new[] { ones, random })
            for (int offset = 0; offset < 8; offset++)
            {
                Assert.Equal(Checksum.SumScalar(buf.AsSpan(offset, 65535)), Checksum.Sum(buf.AsSpan(offset, 65535)));
                Assert.Equal(Checksum.SumScalar(buf.AsSpan(offset, 65534)), Checksum.Sum(buf.AsSpan(offset, 65534)));
            }
    }

    [Fact]
    public void SumMatchesScalarForRandomData()
    {
        var gen =
            from length in Gen.Int[0, 9000]
            from offset in Gen.Int[0, 63]
            from bytes in Gen.Byte.Array[length + offset]
            from initial in Gen.UInt
            select (bytes, offset, initial);
        gen.Sample(t =>
        {
            var span = t.bytes.AsSpan(t.offset);
            Assert.Equal(Checksum.SumScalar(span, t.initial), Checksum.Sum(span, t.initial));
        }, iter: Iterations);
    }

    [Fact]
    public void SumChainsOverEvenPieces()
    {
        var gen =
            from half in Gen.Int[0, 800]
            from bytes in Gen.Byte.Array[0, 3000]
            select (bytes, split: Math.Min(half * 2, bytes.Length & ~1));
        gen.Sample(t =>
        {
            var a = t.bytes.AsSpan(0, t.split);
            var b = t.bytes.AsSpan(t.split);
            Assert.Equal(Checksum.Sum(t.bytes), Checksum.Sum(b, Checksum.Sum(a)));
        }, iter: Iterations);
    }

    [Fact]
    public void SumDoesNotAllocate()
    {
        byte[] data = new byte[1500];
        new Random(3).NextBytes(data);
        uint sink = Checksum.Sum(data); // JIT and tiering first
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1_000_000; i++)
            sink += Checksum.Sum(data.AsSpan(i & 63, 64 + (i & 511)));
        Assert.Equal(before, GC.GetAllocatedBytesForCurrentThread());
        Assert.NotEqual(0u, sink | 1);
    }

    // ---- Incremental update (RFC 1624 eqn. 3) vs full recomputation ----

    private static readonly Gen<byte[]> Ipv4HeaderGen =
        from ihl in Gen.Int[5, 15]
        from bytes in Gen.Byte.Array[ihl * 4]
        select WithIpv4Checksum(bytes, ihl);

    private static byte[] WithIpv4Checksum(byte[] h, int ihl)
    {
        h[0] = (byte)(0x40 | ihl);
        h[10] = 0; h[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(10), Checksum.Ipv4Header(h));
        return h;
    }

    private static ushort StoredIpv4Checksum(byte[] h) => BinaryPrimitives.ReadUInt16BigEndian(h.AsSpan(10));

    [Fact]
    public void TtlDecrementMatchesRecomputation()
    {
        Ipv4HeaderGen.Sample(h =>
        {
            byte ttl = h[8];
            bool decremented = Checksum.Ipv4DecrementTtl(h);
            Assert.Equal(ttl > 1, decremented);
            Assert.Equal(decremented ? ttl - 1 : ttl, h[8]);
            Assert.Equal(Checksum.Ipv4Header(h), StoredIpv4Checksum(h));
            Assert.True(Checksum.Ipv4HeaderValid(h));
        }, iter: Iterations);
    }

    [Fact]
    public void TtlChangeMatchesRecomputation()
    {
        Gen.Select(Ipv4HeaderGen, Gen.Byte).Sample(t =>
        {
            var (h, newTtl) = t;
            ushort updated = Checksum.UpdateTtl(StoredIpv4Checksum(h), h[8], newTtl);
            // Same change through the generic 16-bit update of the TTL|protocol word.
            ushort viaWord = Checksum.Update16(StoredIpv4Checksum(h),
                (ushort)(h[8] << 8 | h[9]), (ushort)(newTtl << 8 | h[9]));
            h[8] = newTtl;
            Assert.Equal(Checksum.Ipv4Header(h), updated);
            Assert.Equal(updated, viaWord);
        }, iter: Iterations);
    }

    [Fact]
    public void Ipv4AddressRewriteMatchesRecomputation()
    {
        Gen.Select(Ipv4HeaderGen, Gen.UInt, Gen.UInt).Sample(t =>
        {
            var (h, newSrc, newDst) = t;
            ushort c = StoredIpv4Checksum(h);
            c = Checksum.Update32(c, BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(12)), newSrc);
            c = Checksum.Update32(c, BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(16)), newDst);
            BinaryPrimitives.WriteUInt32BigEndian(h.AsSpan(12), newSrc);
            BinaryPrimitives.WriteUInt32BigEndian(h.AsSpan(16), newDst);
            Assert.Equal(Checksum.Ipv4Header(h), c);
        }, iter: Iterations);
    }

    /// <summary>
    /// A random L4 packet and a random NAT rewrite. <c>Force</c> 1 makes the original checksum compute to
    /// 0x0000 and 2 makes the rewritten one do so, by choosing one payload word — the RFC 1624 §3 corner
    /// that random data hits once in 65535.
    /// </summary>
    private sealed record L4Case(byte Protocol, byte[] Segment, UInt128 Src, UInt128 Dst, UInt128 NewSrc,
        UInt128 NewDst, ushort NewSrcPort, ushort NewDstPort, int Force)
    {
        public override string ToString() =>
            $"proto={Protocol} len={Segment.Length} force={Force} src={Src:X} dst={Dst:X} → {NewSrc:X} {NewDst:X} ports {NewSrcPort} {NewDstPort}";
    }

    private static readonly Gen<UInt128> Addr128 = Gen.Select(Gen.ULong, Gen.ULong, (hi, lo) => new UInt128(hi, lo));

    private static Gen<L4Case> L4Gen(bool v6) =>
        from protocol in v6
            ? Gen.OneOfConst(Checksum.ProtocolTcp, Checksum.ProtocolUdp, Checksum.ProtocolIcmpV6)
            : Gen.OneOfConst(Checksum.ProtocolTcp, Checksum.ProtocolUdp)
        from segment in Gen.Byte.Array[HeaderLength(protocol) + 2, 1500]
        from src in Addr128
        from dst in Addr128
        from newSrc in Addr128
        from newDst in Addr128
        from newSrcPort in Gen.UShort
        from newDstPort in Gen.UShort
        from force in Gen.Int[0, 2]
        select v6
            ? new L4Case(protocol, segment, src, dst, newSrc, newDst, newSrcPort, newDstPort, force)
            : new L4Case(protocol, segment, (uint)src, (uint)dst, (uint)newSrc, (uint)newDst, newSrcPort, newDstPort, force);

    private static int HeaderLength(byte protocol) => protocol switch
    {
        Checksum.ProtocolTcp => 20,
        Checksum.ProtocolUdp => 8,
        _ => 8, // ICMPv6 echo
    };

    private static int ChecksumOffset(byte protocol) => protocol switch
    {
        Checksum.ProtocolTcp => 16,
        Checksum.ProtocolUdp => 6,
        _ => 2,
    };

    // The "port" words a NAT rewrites: TCP/UDP source and destination port; ICMPv6 echo identifier (RFC 4443
    // §4.1) and, for symmetry of the test, the sequence number.
    private static (int, int) PortOffsets(byte protocol) => protocol == Checksum.ProtocolIcmpV6 ? (4, 6) : (0, 2);

    private static uint PseudoHeader(bool v6, UInt128 src, UInt128 dst, byte protocol, int length)
        => v6 ? Checksum.PseudoHeaderV6(src, dst, protocol, length)
              : Checksum.PseudoHeaderV4((uint)src, (uint)dst, protocol, length);

    // Full computation through the public packet functions (the spans path), checksum field zeroed.
    private static ushort Full(bool v6, UInt128 src, UInt128 dst, byte protocol, byte[] segment)
    {
        int co = ChecksumOffset(protocol);
        byte[] copy = (byte[])segment.Clone();
        copy[co] = 0; copy[co + 1] = 0;
        if (!v6) return Checksum.TransportV4((uint)src, (uint)dst, protocol, copy);
        Span<byte> s = stackalloc byte[16], d = stackalloc byte[16];
        BinaryPrimitives.WriteUInt128BigEndian(s, src);
        BinaryPrimitives.WriteUInt128BigEndian(d, dst);
        return Checksum.TransportV6(s, d, protocol, copy);
    }

    // Choose the first payload word so the checksum over (src, dst, segment) computes to 0x0000.
    private static void ForceZero(bool v6, UInt128 src, UInt128 dst, byte protocol, byte[] segment)
    {
        int at = HeaderLength(protocol), co = ChecksumOffset(protocol);
        segment[at] = 0; segment[at + 1] = 0;
        byte[] copy = (byte[])segment.Clone();
        copy[co] = 0; copy[co + 1] = 0;
        ushort s = Checksum.FoldNoComplement(Checksum.SumScalar(copy, PseudoHeader(v6, src, dst, protocol, copy.Length)));
        BinaryPrimitives.WriteUInt16BigEndian(segment.AsSpan(at), (ushort)(0xFFFF - s));
    }

    private static void CheckL4Rewrite(bool v6, L4Case c)
    {
        byte p = c.Protocol;
        byte[] seg = c.Segment;
        bool udp = p == Checksum.ProtocolUdp;
        if (udp) BinaryPrimitives.WriteUInt16BigEndian(seg.AsSpan(4), (ushort)seg.Length);
        if (p == Checksum.ProtocolIcmpV6) { seg[0] = 128; seg[1] = 0; } // echo request
        var (po1, po2) = PortOffsets(p);
        int co = ChecksumOffset(p);

        if (c.Force == 1) ForceZero(v6, c.Src, c.Dst, p, seg);
        byte[] rewritten = (byte[])seg.Clone();
        BinaryPrimitives.WriteUInt16BigEndian(rewritten.AsSpan(po1), c.NewSrcPort);
        BinaryPrimitives.WriteUInt16BigEndian(rewritten.AsSpan(po2), c.NewDstPort);
        if (c.Force == 2)
        {
            ForceZero(v6, c.NewSrc, c.NewDst, p, rewritten);
            rewritten.AsSpan(HeaderLength(p), 2).CopyTo(seg.AsSpan(HeaderLength(p))); // same payload both sides
        }

        ushort original = Full(v6, c.Src, c.Dst, p, seg);
        if (c.Force == 1) Assert.Equal(udp ? 0xFFFF : 0x0000, original);

        // Incremental: addresses (pseudo-header), then the two port words.
        ushort hc = original;
        if (v6)
        {
            hc = Checksum.Update128(hc, c.Src, c.NewSrc);
            hc = Checksum.Update128(hc, c.Dst, c.NewDst);
        }
        else
        {
            hc = Checksum.Update32(hc, (uint)c.Src, (uint)c.NewSrc);
            hc = Checksum.Update32(hc, (uint)c.Dst, (uint)c.NewDst);
        }
        hc = Checksum.Update16(hc, BinaryPrimitives.ReadUInt16BigEndian(seg.AsSpan(po1)), c.NewSrcPort);
        hc = Checksum.Update16(hc, BinaryPrimitives.ReadUInt16BigEndian(seg.AsSpan(po2)), c.NewDstPort);
        // The only 0x0000/0xFFFF equivalence the RFCs allow: UDP transmits a computed 0 as 0xFFFF.
        if (udp) hc = Checksum.UdpTransmitted(hc);

        ushort full = Full(v6, c.NewSrc, c.NewDst, p, rewritten);
        if (c.Force == 2) Assert.Equal(udp ? 0xFFFF : 0x0000, full);
        Assert.Equal(full, hc);

        // And the rewritten packet with the updated checksum in place verifies.
        BinaryPrimitives.WriteUInt16BigEndian(rewritten.AsSpan(co), hc);
        uint sum = Checksum.Sum(rewritten, PseudoHeader(v6, c.NewSrc, c.NewDst, p, rewritten.Length));
        Assert.Equal(0xFFFF, Checksum.FoldNoComplement(sum));
    }

    [Fact]
    public void Ipv4TransportRewriteMatchesRecomputation()
        => L4Gen(v6: false).Sample(c => CheckL4Rewrite(false, c), iter: Iterations);

    [Fact]
    public void Ipv6TransportRewriteMatchesRecomputation()
        => L4Gen(v6: true).Sample(c => CheckL4Rewrite(true, c), iter: Iterations);

    [Fact]
    public void Icmpv4IdentifierRewriteMatchesRecomputation()
    {
        var gen = from msg in Gen.Byte.Array[8, 1500] from id in Gen.UShort select (msg, id);
        gen.Sample(t =>
        {
            var (msg, id) = t;
            msg[2] = 0; msg[3] = 0;
            ushort c = Checksum.Icmpv4(msg);
            ushort updated = Checksum.Update16(c, BinaryPrimitives.ReadUInt16BigEndian(msg.AsSpan(4)), id);
            BinaryPrimitives.WriteUInt16BigEndian(msg.AsSpan(4), id);
            Assert.Equal(Checksum.Icmpv4(msg), updated);
        }, iter: Iterations);
    }

    [Fact]
    public void PseudoHeaderV6SpanAndValueAgree()
    {
        Gen.Select(Addr128, Addr128, Gen.Int[0, 65535]).Sample(t =>
        {
            var (src, dst, length) = t;
            Span<byte> s = stackalloc byte[16], d = stackalloc byte[16];
            BinaryPrimitives.WriteUInt128BigEndian(s, src);
            BinaryPrimitives.WriteUInt128BigEndian(d, dst);
            // Reference: the 40-byte pseudo-header laid out as RFC 8200 §8.1 draws it.
            byte[] ph = new byte[40];
            s.CopyTo(ph); d.CopyTo(ph.AsSpan(16));
            BinaryPrimitives.WriteInt32BigEndian(ph.AsSpan(32), length);
            ph[39] = Checksum.ProtocolTcp;
            uint expected = Checksum.SumScalar(ph);
            Assert.Equal(expected, Checksum.FoldNoComplement(Checksum.PseudoHeaderV6(s, d, Checksum.ProtocolTcp, length)));
            Assert.Equal(expected, Checksum.FoldNoComplement(Checksum.PseudoHeaderV6(src, dst, Checksum.ProtocolTcp, length)));
        }, iter: Iterations);
    }
}
